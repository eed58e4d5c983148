// Package jobs is the contract shared by the API, the workflow and the worker:
// workflow IDs and names, message names and payloads, statuses and search
// attributes. It imports nothing from the rest of the project.
package jobs

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// TaskQueue is the one task queue that job workflows and their activities run on.
const TaskQueue = "image-jobs"

// Workflow names.
const (
	// WorkflowName is the job workflow.
	WorkflowName = "ImageJob"
	// LatePaymentWorkflow refunds a payment that arrived after its job's
	// workflow had ended (a late checkout.session.completed).
	LatePaymentWorkflow = "LatePaymentRefund"
	// OwedRefundWorkflow refunds a payment the sweep found owed after its job's workflow ended.
	OwedRefundWorkflow = "OwedRefund"
	// ReconcileWorkflow is the periodic sweep (run by ReconcileSchedule)
	// that settles jobs whose workflow was terminated or timed out.
	ReconcileWorkflow = "Reconcile"
	// ReconcileSchedule is the Temporal Schedule that runs the sweep.
	ReconcileSchedule = "hires-reconcile"
)

// LatePaymentWorkflowID is the ID of the late-payment refund of a job: one per job.
func LatePaymentWorkflowID(jobID string) string { return "late-payment:" + jobID }

// OwedRefundWorkflowID is the ID of the sweep's refund of a job: one at a time per job.
func OwedRefundWorkflowID(jobID string) string { return "owed-refund:" + jobID }

const workflowIDPrefix = "job:"

// WorkflowID derives a job's workflow ID from its job ID: one workflow per job.
func WorkflowID(jobID string) string { return workflowIDPrefix + jobID }

// JobIDFromWorkflowID is the inverse of WorkflowID.
func JobIDFromWorkflowID(workflowID string) (string, bool) {
	return strings.CutPrefix(workflowID, workflowIDPrefix)
}

// Message names.
const (
	// SignalStripeEvent carries a verified Stripe webhook event (a StripeEvent).
	SignalStripeEvent = "stripe-event"
	// SignalUpsamplerCallback carries an Upsampler callback (an UpsamplerCallback).
	// It is only a hint: the workflow confirms it with Upsampler's status endpoint.
	SignalUpsamplerCallback = "upsampler-callback"
	// SignalRefundSettled tells the job that an admin marked its refused
	// refund settled (POST /v1/admin/jobs/{id}/refund-settled); no payload.
	SignalRefundSettled = "refund-settled"
	// QueryState returns the workflow's State.
	QueryState = "state"
	// SignalRetry asks a failed job to try again and deliver (a RetryRequest).
	// Admins send it from the Temporal Web UI while the job is in its retry window.
	SignalRetry = "retry"
	// UpdateResendDownload extends a completed job's download link by a full
	// DownloadTTL from now and emails it again (the original's "resend").
	// Input: a DownloadRequest; result: a DownloadInfo.
	UpdateResendDownload = "resend-download"
	// UpdateNewDownloadToken issues a fresh download token (the old link
	// stops working), extends the expiry and emails the new link (the
	// original's "fix"). Input: a DownloadRequest; result: a DownloadInfo.
	UpdateNewDownloadToken = "new-download-token"
)

// DownloadRequest is the input of the download updates. In the Web UI:
// {"requested_by": "alice"} (optional).
type DownloadRequest struct {
	RequestedBy string `json:"requested_by,omitempty"`
}

// DownloadInfo is the result of the download updates.
type DownloadInfo struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// Emails the workflow sends (the mail package renders them).
const (
	EmailPaymentReceived = "payment-received"
	EmailImageReady      = "image-ready"
	EmailExpiringSoon    = "expiring-soon"
	EmailFailedRefunded  = "failed-refunded"
	// EmailPaymentProcessing: a delayed payment method (bank debit) is
	// being processed; the customer hears again when Stripe decides.
	EmailPaymentProcessing = "payment-processing"
	// EmailRefundAttention goes to the admin only: Stripe kept refusing a
	// refund that is owed, and a person has to settle it.
	EmailRefundAttention = "refund-needs-attention"
)

// Integration events the workflow emits, the original's smi_* hooks.
const (
	HookJobCreated       = "job.created"
	HookPaymentCompleted = "payment.completed"
	HookJobCompleted     = "job.completed"
	HookJobFailed        = "job.failed"
)

// RetryRequest is the admin's retry signal. In the Web UI its JSON input is
// {"reason": "...", "requested_by": "..."} (both optional).
type RetryRequest struct {
	Reason      string `json:"reason,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
}

// Status is a job's lifecycle status.
type Status string

// The six job statuses.
const (
	StatusAwaitingPayment Status = "awaiting_payment"
	StatusPending         Status = "pending"
	StatusProcessing      Status = "processing"
	StatusCompleted       Status = "completed"
	StatusFailed          Status = "failed"
	StatusAbandoned       Status = "abandoned"
)

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{
	StatusAwaitingPayment, StatusPending, StatusProcessing,
	StatusCompleted, StatusFailed, StatusAbandoned,
}

// Valid reports whether s is one of the six statuses.
func (s Status) Valid() bool { return slices.Contains(Statuses, s) }

// Final reports whether no further transition can leave s.
func (s Status) Final() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusAbandoned
}

// PaymentStatus is the state of the customer's payment.
type PaymentStatus string

// Payment statuses.
const (
	PaymentPending PaymentStatus = "pending" // Checkout Session open, nothing paid
	PaymentPaid    PaymentStatus = "paid"
	PaymentFailed  PaymentStatus = "failed"  // an asynchronous payment method failed
	PaymentExpired PaymentStatus = "expired" // the Checkout Session expired unpaid
	// PaymentRefunded: the whole payment went back to the customer.
	PaymentRefunded PaymentStatus = "refunded"
	// PaymentRefundFailed: a refund is owed and Stripe refused it so far;
	// the workflow keeps retrying, every RefundRetry, for RefundAttention.
	PaymentRefundFailed PaymentStatus = "refund_failed"
	// PaymentRefundNeedsAttention: Stripe kept refusing the refund for
	// RefundAttention; no more automatic attempts. An admin refunds by hand
	// (charge.refunded then settles it) or marks it settled.
	PaymentRefundNeedsAttention PaymentStatus = "refund_needs_attention"
	// PaymentProcessing: the customer completed Checkout with a delayed
	// method (bank debit); Stripe reports success or failure within days.
	PaymentProcessing PaymentStatus = "processing"
)

// PaymentStatuses lists every payment status.
var PaymentStatuses = []PaymentStatus{
	PaymentPending, PaymentProcessing, PaymentPaid, PaymentFailed, PaymentExpired,
	PaymentRefunded, PaymentRefundFailed, PaymentRefundNeedsAttention,
}

// Valid reports whether p is one of PaymentStatuses.
func (p PaymentStatus) Valid() bool { return slices.Contains(PaymentStatuses, p) }

// OwedBack reports whether a payment in status p is to be paid back once
// its job has ended without delivering: received, and not refunded (nor
// handed to an admin).
func (p PaymentStatus) OwedBack() bool { return p == PaymentPaid || p == PaymentRefundFailed }

// Failure reasons recorded on failed jobs (machine-readable, stable).
const (
	ReasonCheckoutFailed     = "checkout_failed"
	ReasonUpsamplerRejected  = "upsampler_rejected"
	ReasonUpsamplerFailed    = "upsampler_failed"
	ReasonUpsamplerTimeout   = "upsampler_timeout"
	ReasonUpsamplerNoOutput  = "upsampler_no_output"
	ReasonResultFetchFailed  = "result_fetch_failed"
	ReasonResultInvalid      = "result_invalid"
	ReasonUpsamplerSubmitErr = "upsampler_submit_failed"
	// ReasonTerminated: the workflow was terminated (or timed out) by an
	// admin or the server; the reconciliation sweep records it.
	ReasonTerminated = "terminated"
	// ReasonCancelled: an admin cancelled the workflow.
	ReasonCancelled = "cancelled"
	// ReasonLatePayment is the refund reason of a payment that arrived
	// after its job was abandoned.
	ReasonLatePayment = "late_payment"
)

// Resolution is an upscale factor offered for sale.
type Resolution string

// Resolutions on sale.
const (
	Resolution4x Resolution = "4x"
	Resolution8x Resolution = "8x"
)

// Factor returns the upscale factor of r, or 0 if r is not on sale.
func (r Resolution) Factor() int {
	switch r {
	case Resolution4x:
		return 4
	case Resolution8x:
		return 8
	}
	return 0
}

// WorkflowInput starts a job's workflow. Everything the workflow needs to
// decide is here, so that its behaviour does not depend on the worker's
// configuration at replay time. It carries no customer data and no secret:
// activities read the email from the job's row and make the customer's
// links themselves (see activities.Activities.AccessSecret).
type WorkflowInput struct {
	JobID       string
	ImageURL    string
	Resolution  Resolution
	ImageWidth  int
	ImageHeight int
	PriceCents  int64
	Currency    string
	// CheckoutExpiresAt is computed once by the API, so that a retried
	// session creation sends identical parameters under its idempotency key.
	CheckoutExpiresAt time.Time
	// Checkout is the session the API made before starting the workflow.
	Checkout Checkout
	Timeouts Timeouts
	Limits   Limits
}

// Timeouts are the workflow's business deadlines, taken from configuration.
type Timeouts struct {
	// Payment is how long the job waits for payment before it is abandoned.
	Payment time.Duration
	// DownloadTTL is how long the download link stays valid.
	DownloadTTL time.Duration
	// Processing bounds the whole Upsampler round trip, from submission to result.
	Processing time.Duration
	// PollInterval is how often Upsampler's status is polled when no callback arrives.
	PollInterval time.Duration
	// LostSubmission is how long a submission whose answer was lost waits
	// for its callback (which names the Upsampler job) before the image is
	// sent again.
	LostSubmission time.Duration
	// RetryWindow is how long a failed job stays open for an admin retry.
	RetryWindow time.Duration
	// RefundRetry is how long a refused refund waits before it is tried again.
	RefundRetry time.Duration
	// RefundAttention is how long refused refunds are retried before the
	// job is handed to an admin (payment status refund_needs_attention).
	RefundAttention time.Duration
	// AsyncPayment is how long a Checkout completed with a delayed payment
	// method waits for Stripe's verdict (async_payment_succeeded/failed).
	AsyncPayment time.Duration
	// ReminderLead is how long before the link expires the customer is
	// reminded, if they have not downloaded yet (0: no reminder).
	ReminderLead time.Duration
}

// Limits bound what admins can make a job do again, and with it the
// length of its workflow history. Zero means no limit (jobs created before
// limits existed).
type Limits struct {
	// MaxRetries is how many admin retries a failed job accepts.
	MaxRetries int
	// MaxResends is how many times admins can send the download link again
	// (resend-download and new-download-token together).
	MaxResends int
}

// CheckoutText is what Stripe Checkout shows the customer for a job.
func CheckoutText(r Resolution, width, height int) (name, description string) {
	f := r.Factor()
	return fmt.Sprintf("High-resolution image (%s)", r),
		fmt.Sprintf("AI upscale from %dx%d to %dx%d pixels", width, height, width*f, height*f)
}

// Checkout is the job's Stripe Checkout Session. Its URL, the customer's
// payment page, stays in the job's row: it never travels through Temporal.
type Checkout struct {
	SessionID string
	ExpiresAt time.Time
}

// StripeEvent is a verified Stripe event routed to a job.
type StripeEvent struct {
	EventID         string
	Type            string // e.g. checkout.session.completed
	SessionID       string
	PaymentStatus   string // the session's payment_status: paid, unpaid, no_payment_required
	PaymentIntentID string
	AmountCents     int64
	Currency        string
}

// Paid reports whether the event is a payment: a completed Checkout (or a
// delayed payment's success) whose session is paid.
func (e StripeEvent) Paid() bool {
	return (e.Type == EventCheckoutCompleted || e.Type == EventCheckoutAsyncSucceeded) && e.PaymentStatus == "paid"
}

// Stripe event types the workflow acts on.
const (
	EventCheckoutCompleted      = "checkout.session.completed"
	EventCheckoutAsyncSucceeded = "checkout.session.async_payment_succeeded"
	EventCheckoutAsyncFailed    = "checkout.session.async_payment_failed"
	EventCheckoutExpired        = "checkout.session.expired"
	EventChargeRefunded         = "charge.refunded"
)

// LatePaymentInput starts a LatePaymentRefund workflow.
type LatePaymentInput struct {
	JobID       string
	Payment     StripeEvent
	RefundRetry time.Duration
	// RefundAttention: see Timeouts.
	RefundAttention time.Duration
}

// OwedRefundInput starts an OwedRefund workflow: the sweep found the job's
// payment owed back and no workflow of the job running.
type OwedRefundInput struct {
	JobID           string
	PaymentIntentID string
	AmountCents     int64
	Reason          string
	RefundRetry     time.Duration
	RefundAttention time.Duration
	// FirstAttempt is the number of the first idempotency key to use (the
	// job's workflow may have used, and been refused under, lower ones),
	// and RefusedSince when Stripe first refused (zero: never), from which
	// RefundAttention counts.
	FirstAttempt int
	RefusedSince time.Time
}

// ReconcileInput configures one sweep.
type ReconcileInput struct {
	// Grace: jobs changed more recently than this are left alone, so that a
	// workflow being started is not mistaken for a missing one.
	Grace time.Duration
	// Batch bounds how many orphaned jobs one sweep settles; every owed
	// job is looked at.
	Batch int
	// RefundRetry and RefundAttention shape the refunds the sweep starts
	// (see Timeouts).
	RefundRetry     time.Duration
	RefundAttention time.Duration
}

// ReconcileResult reports a sweep.
type ReconcileResult struct {
	Checked int
	Settled []string // job IDs marked failed and/or handed a refund
}

// UpsamplerCallback is an (unauthenticated) Upsampler webhook delivery.
type UpsamplerCallback struct {
	UpsamplerJobID string
	Status         string
	// Submission is the number in the callback URL (?s=): which send of the
	// image this answers; 0 when the URL had none.
	Submission int
}

// State is what QueryState returns: the workflow's live view of the job.
type State struct {
	JobID          string
	Status         Status
	PaymentStatus  PaymentStatus
	Attempt        int
	UpsamplerJobID string
	FailureReason  string
	DownloadExpiry time.Time
	// RetryUntil is the end of a failed job's retry window.
	RetryUntil time.Time
}
