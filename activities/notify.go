package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"hires/internal/events"
	"hires/internal/jobs"
	"hires/internal/mail"
	"hires/internal/store"
	"hires/internal/token"
)

// ErrTypeNotificationRejected: the mail server or an event endpoint
// refused for good; retrying will not help.
const ErrTypeNotificationRejected = "NotificationRejected"

// SendEmailInput names one email about a job. The recipient and the link
// to the customer's page are made from the job's row, not carried here.
type SendEmailInput struct {
	JobID string
	Kind  string // one of the jobs.Email* values
	Seq   int    // 0, or the number of the admin resend
}

var mailKinds = map[string]mail.Kind{
	jobs.EmailPaymentReceived:   mail.KindPaymentReceived,
	jobs.EmailImageReady:        mail.KindImageReady,
	jobs.EmailExpiringSoon:      mail.KindExpiringSoon,
	jobs.EmailFailedRefunded:    mail.KindFailedRefunded,
	jobs.EmailPaymentProcessing: mail.KindPaymentProcessing,
	jobs.EmailRefundAttention:   mail.KindRefundAttention,
}

// SendEmail sends one email about the job, once: it is recorded as sent,
// and a retry after a crash carries the same Message-ID. A reminder is not
// sent once the customer has downloaded the image.
func (a *Activities) SendEmail(ctx context.Context, in SendEmailInput) error {
	kind, ok := mailKinds[in.Kind]
	if !ok {
		return temporal.NewNonRetryableApplicationError("unknown email "+in.Kind, ErrTypeNotificationRejected, nil)
	}
	if a.Mailer == nil {
		return nil // email is off
	}
	key := fmt.Sprintf("email:%s:%d", in.Kind, in.Seq)
	if sent, err := a.Store.Notified(ctx, in.JobID, key); err != nil || sent {
		return err
	}
	job, err := a.Store.Get(ctx, in.JobID)
	if err != nil {
		return storeErr(err)
	}
	if in.Kind == jobs.EmailExpiringSoon && (job.DownloadedAt != nil || job.DownloadExpiredAt != nil) {
		return nil
	}
	// Admin-only kinds (refund-needs-attention) go to the admin alone: mail.Send routes them.
	msg := mail.Message{Kind: kind, JobID: job.ID, To: customerEmail(job), Seq: in.Seq, Data: a.mailData(job, a.pageURL(job))}
	if err := a.Mailer.Send(ctx, msg); err != nil {
		if mail.Permanent(err) {
			return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNotificationRejected, err)
		}
		return err
	}
	return keepRecording(ctx, func(ctx context.Context) error { return a.Store.RecordNotification(ctx, in.JobID, key) })
}

// customerEmail prefers the address the customer gave Stripe.
func customerEmail(j store.Job) string {
	if j.CustomerEmail != nil {
		return *j.CustomerEmail
	}
	if j.Email != nil {
		return *j.Email
	}
	return ""
}

func (a *Activities) mailData(j store.Job, pageURL string) mail.MessageData {
	d := mail.MessageData{
		JobURL:       pageURL,
		Resolution:   string(j.Resolution),
		OutputWidth:  j.OutputWidth,
		OutputHeight: j.OutputHeight,
		AmountCents:  j.PriceCents,
		Currency:     j.Currency,
		SiteName:     a.SiteName,
	}
	if j.AmountPaidCents != nil {
		d.AmountCents = *j.AmountPaidCents
	}
	if j.RefundAmountCents != nil && j.RefundedAt != nil {
		d.AmountCents = *j.RefundAmountCents
	}
	if j.DownloadToken != nil && token.IsAlnum(*j.DownloadToken, DownloadTokenLength) {
		d.DownloadURL = a.PublicBaseURL + "/v1/downloads/" + *j.DownloadToken
	}
	if j.DownloadExpiresAt != nil {
		d.ExpiresAt = *j.DownloadExpiresAt
	}
	if j.FailureReason != nil {
		d.Reason = *j.FailureReason
	}
	// Shown to the admin only (refund-needs-attention).
	if j.RefundError != nil {
		d.Detail = *j.RefundError
	}
	if j.PaymentIntentID != nil {
		d.PaymentID = *j.PaymentIntentID
	}
	return d
}

// DeliverEventInput names one integration event about a job.
type DeliverEventInput struct {
	JobID   string
	Type    string // one of the jobs.Hook* values
	Attempt int
	At      time.Time // when it happened (workflow time), so retries send the same event
}

// DeliverEvent stores the event (its ID is stable per job, type and
// attempt; its bytes are those of the first try) and POSTs it to every
// enabled endpoint subscribed to its type that has not settled it yet,
// logging each attempt. Delivery is at least once: receivers deduplicate on
// the ID. Endpoints and their secrets are read from the database, so none
// of them passes through Temporal.
func (a *Activities) DeliverEvent(ctx context.Context, in DeliverEventInput) error {
	if a.Events == nil {
		return nil // events are off (tests of other activities)
	}
	typ := events.Type(in.Type)
	if !typ.Valid() {
		return temporal.NewNonRetryableApplicationError("unknown event type "+in.Type, ErrTypeNotificationRejected, nil)
	}
	job, err := a.Store.Get(ctx, in.JobID)
	if err != nil {
		return storeErr(err)
	}
	body, err := events.New(typ, job.ID, in.Attempt, in.At, eventData(job)).Marshal()
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNotificationRejected, err)
	}
	var ev store.StoredEvent
	err = keepRecording(ctx, func(ctx context.Context) (err error) {
		ev, err = a.Store.SaveEvent(ctx, store.StoredEvent{ID: events.NewID(job.ID, typ, in.Attempt), Type: typ, JobID: job.ID, Payload: body})
		return err
	})
	if err != nil {
		return err
	}
	eps, err := a.Store.Endpoints(ctx, typ)
	if err != nil {
		return err
	}
	var errs []error
	retry := false
	for _, ep := range eps {
		if settled, err := a.Store.Settled(ctx, ep.ID, ev.ID); err != nil {
			return err
		} else if settled {
			continue
		}
		res, err := a.Events.Deliver(ctx, ep, ev.ID, ev.Payload)
		d := store.Delivery{
			EndpointID: ep.ID, EventID: ev.ID, Outcome: events.OutcomeOf(err), StatusCode: res.StatusCode,
			Error: events.LogError(err), DurationMS: res.Duration.Milliseconds(),
		}
		// The log is also the record of what was acknowledged: keep it
		// through a database outage, or the event would be sent again.
		if lerr := keepRecording(ctx, func(ctx context.Context) error { _, err := a.Store.LogDelivery(ctx, d); return err }); lerr != nil {
			return lerr
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", ep.ID, err))
			retry = retry || events.Retryable(err)
		}
	}
	switch err := errors.Join(errs...); {
	case err == nil:
		return nil
	case retry:
		return err
	default:
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNotificationRejected, err)
	}
}

func eventData(j store.Job) events.Data {
	d := events.Data{
		Status: string(j.Status), Resolution: string(j.Resolution),
		PriceCents: j.PriceCents, Currency: j.Currency,
	}
	if j.AmountPaidCents != nil {
		d.AmountPaidCents = *j.AmountPaidCents
	}
	if j.PaymentIntentID != nil {
		d.PaymentIntentID = *j.PaymentIntentID
	}
	if j.Status == jobs.StatusCompleted {
		d.DownloadExpiresAt = j.DownloadExpiresAt
	}
	if j.FailureReason != nil {
		d.FailureReason = *j.FailureReason
	}
	if j.RefundAmountCents != nil {
		d.RefundedCents = *j.RefundAmountCents
	}
	return d
}
