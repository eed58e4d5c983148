package api

import (
	"time"

	"hires/internal/jobs"
	"hires/internal/store"
)

// Price is what a job costs its customer, in integer cents of currency.
type Price struct {
	Currency     string `json:"currency"`
	AmountCents  int64  `json:"amount_cents"`
	OutputWidth  int    `json:"output_width"`
	OutputHeight int    `json:"output_height"`
}

func priceView(j store.Job) Price {
	return Price{Currency: j.Currency, AmountCents: j.PriceCents, OutputWidth: j.OutputWidth, OutputHeight: j.OutputHeight}
}

// AdminPrice is the frozen quote with what it is made of: Upsampler's
// credits and cost, and the shop's markup. Admins only.
type AdminPrice struct {
	Price
	Credits       int64 `json:"credits"`
	CostCents     int64 `json:"cost_cents"`
	MarkupPercent int   `json:"markup_percent"`
}

// CreateJobResponse answers POST /v1/jobs. The access token is returned
// to the creator only; it is needed to read the job.
type CreateJobResponse struct {
	ID                string      `json:"id"`
	Status            jobs.Status `json:"status"`
	AccessToken       string      `json:"access_token"`
	CheckoutURL       string      `json:"checkout_url"`
	CheckoutExpiresAt time.Time   `json:"checkout_expires_at"`
	Price             Price       `json:"price"`
	CreatedAt         time.Time   `json:"created_at"`
}

// Download is the link to a completed job's file.
type Download struct {
	URL       string    `json:"url,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	Expired   bool      `json:"expired"`
}

// RefundView tells the customer their money went back.
type RefundView struct {
	AmountCents int64     `json:"amount_cents"`
	Currency    string    `json:"currency"`
	RefundedAt  time.Time `json:"refunded_at"`
}

// JobView is what a customer sees of a job.
type JobView struct {
	ID                  string             `json:"id"`
	Status              jobs.Status        `json:"status"`
	PaymentStatus       jobs.PaymentStatus `json:"payment_status"`
	Resolution          jobs.Resolution    `json:"resolution"`
	ImageWidth          int                `json:"image_width"`
	ImageHeight         int                `json:"image_height"`
	Price               Price              `json:"price"`
	CheckoutURL         string             `json:"checkout_url,omitempty"`
	CreatedAt           time.Time          `json:"created_at"`
	UpdatedAt           time.Time          `json:"updated_at"`
	PaidAt              *time.Time         `json:"paid_at,omitempty"`
	ProcessingStartedAt *time.Time         `json:"processing_started_at,omitempty"`
	CompletedAt         *time.Time         `json:"completed_at,omitempty"`
	FailedAt            *time.Time         `json:"failed_at,omitempty"`
	// Refund is set once the payment went back to the customer.
	Refund   *RefundView `json:"refund,omitempty"`
	Download *Download   `json:"download,omitempty"`
}

func (s *Server) customerView(j store.Job) JobView {
	v := JobView{
		ID: j.ID, Status: j.Status, PaymentStatus: j.PaymentStatus, Resolution: j.Resolution,
		ImageWidth: j.ImageWidth, ImageHeight: j.ImageHeight, Price: priceView(j),
		CreatedAt: j.CreatedAt.UTC(), UpdatedAt: j.UpdatedAt.UTC(),
		PaidAt: utc(j.PaidAt), ProcessingStartedAt: utc(j.ProcessingStartedAt),
		CompletedAt: utc(j.ProcessingCompletedAt), FailedAt: utc(j.FailedAt),
	}
	if j.RefundedAt != nil {
		v.Refund = &RefundView{AmountCents: deref(j.RefundAmountCents), Currency: deref(j.PaidCurrency), RefundedAt: j.RefundedAt.UTC()}
	}
	if j.Status == jobs.StatusAwaitingPayment && j.PaymentStatus != jobs.PaymentProcessing && j.CheckoutURL != nil {
		v.CheckoutURL = *j.CheckoutURL
	}
	if j.Status == jobs.StatusCompleted && j.DownloadExpiresAt != nil {
		d := &Download{ExpiresAt: j.DownloadExpiresAt.UTC()}
		d.Expired = j.DownloadExpiredAt != nil || !s.now().Before(*j.DownloadExpiresAt)
		if !d.Expired && j.DownloadToken != nil {
			d.URL = s.cfg.PublicBaseURL + "/v1/downloads/" + *j.DownloadToken
		}
		v.Download = d
	}
	return v
}

// SiteJobView is what the site that created a job sees: the customer's
// view and the site's own references, to show its customer where they are.
type SiteJobView struct {
	JobView
	ImageURL      string  `json:"image_url"`
	PostID        int64   `json:"post_id"`
	AttachmentID  *int64  `json:"attachment_id"`
	FailureReason *string `json:"failure_reason,omitempty"`
}

func (s *Server) siteView(j store.Job) SiteJobView {
	return SiteJobView{JobView: s.customerView(j), ImageURL: j.ImageURL, PostID: j.PostID,
		AttachmentID: j.AttachmentID, FailureReason: j.FailureReason}
}

// AdminJobView is the whole job record, without its secrets.
type AdminJobView struct {
	JobView
	// Price shadows the customer's: admins see cost and margin.
	Price              AdminPrice `json:"price"`
	Site               *string    `json:"site"`
	ImageURL           string     `json:"image_url"`
	Email              *string    `json:"email"`
	PostID             int64      `json:"post_id"`
	AttachmentID       *int64     `json:"attachment_id"`
	CheckoutSessionID  *string    `json:"checkout_session_id"`
	CheckoutExpiresAt  *time.Time `json:"checkout_expires_at"`
	PaymentIntentID    *string    `json:"payment_intent_id"`
	AmountPaidCents    *int64     `json:"amount_paid_cents"`
	PaidCurrency       *string    `json:"paid_currency"`
	CustomerEmail      *string    `json:"customer_email"`
	RefundID           *string    `json:"refund_id"`
	RefundAmountCents  *int64     `json:"refund_amount_cents"`
	RefundedAt         *time.Time `json:"refunded_at"`
	RefundStatus       *string    `json:"refund_status"`
	RefundConfirmedAt  *time.Time `json:"refund_confirmed_at"`
	RefundError        *string    `json:"refund_error"`
	Attempt            int        `json:"attempt"`
	UpsamplerJobID     *string    `json:"upsampler_job_id"`
	UpsamplerCredits   *float64   `json:"upsampler_credits"`
	UpsamplerCostCents *int64     `json:"upsampler_cost_cents"`
	FailureReason      *string    `json:"failure_reason"`
	FailureDetail      *string    `json:"failure_detail"`
	ResultContentType  *string    `json:"result_content_type"`
	ResultBytes        *int64     `json:"result_bytes"`
	ResultSHA256       *string    `json:"result_sha256"`
	ResultWidth        *int       `json:"result_width"`
	ResultHeight       *int       `json:"result_height"`
	DownloadExpiredAt  *time.Time `json:"download_expired_at"`
	// MarginCents is what the job earned: paid, less Upsampler's cost (the
	// actual one when known, else the estimate), less refunds.
	MarginCents *int64 `json:"margin_cents"`
	WorkflowID  string `json:"workflow_id"`
}

func (s *Server) adminView(j store.Job) AdminJobView {
	v := AdminJobView{
		JobView:  s.customerView(j),
		ImageURL: j.ImageURL, Email: j.Email, PostID: j.PostID, AttachmentID: j.AttachmentID,
		CheckoutSessionID: j.CheckoutSessionID, CheckoutExpiresAt: utc(j.CheckoutExpiresAt),
		PaymentIntentID: j.PaymentIntentID, AmountPaidCents: j.AmountPaidCents, PaidCurrency: j.PaidCurrency,
		CustomerEmail: j.CustomerEmail, RefundID: j.RefundID, RefundAmountCents: j.RefundAmountCents,
		RefundedAt: utc(j.RefundedAt), RefundStatus: j.RefundStatus, RefundConfirmedAt: utc(j.RefundConfirmedAt),
		RefundError: j.RefundError, Attempt: j.Attempt, UpsamplerJobID: j.UpsamplerJobID, UpsamplerCredits: j.UpsamplerCredits,
		UpsamplerCostCents: j.UpsamplerCostCents, FailureReason: j.FailureReason, FailureDetail: j.FailureDetail,
		ResultContentType: j.ResultContentType, ResultBytes: j.ResultBytes, ResultSHA256: j.ResultSHA256,
		ResultWidth: j.ResultWidth, ResultHeight: j.ResultHeight, DownloadExpiredAt: utc(j.DownloadExpiredAt),
		WorkflowID: jobs.WorkflowID(j.ID), Site: j.Site,
		Price: AdminPrice{Price: priceView(j), Credits: j.EstimatedCredits, CostCents: j.EstimatedCostCents, MarkupPercent: j.MarkupPercent},
	}
	if v.Download != nil {
		v.Download.URL = "" // admins see the job, not the customer's link
	}
	if j.AmountPaidCents != nil {
		cost := j.EstimatedCostCents
		if j.UpsamplerCostCents != nil {
			cost = *j.UpsamplerCostCents
		}
		m := *j.AmountPaidCents - cost - deref(j.RefundAmountCents)
		v.MarginCents = &m
	}
	return v
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
