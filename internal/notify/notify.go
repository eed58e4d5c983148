// Package notify delivers what the job record's outbox holds: the emails to
// customers and to the admin, and the integration events to the sites'
// endpoints. Each message is written in the same transaction as the change
// that causes it (internal/store), so none is lost and none is sent for a
// change that did not happen; the dispatcher sends each at least once,
// retries it with backoff, and gives it up after GiveUpAfter or when its
// target refuses it for good. Workflows do not wait for any of it.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"hires/internal/events"
	"hires/internal/jobs"
	"hires/internal/mail"
	"hires/internal/store"
	"hires/internal/token"
)

// Outbox is the part of the job record the dispatcher uses.
type Outbox interface {
	ClaimDue(ctx context.Context, limit int, lease time.Duration) ([]store.Message, error)
	Delivered(ctx context.Context, m store.Message, why string) error
	RetryAt(ctx context.Context, m store.Message, at time.Time, cause error) error
	GiveUp(ctx context.Context, m store.Message, cause error) error
	Get(ctx context.Context, id string) (store.Job, error)
	SaveEvent(ctx context.Context, e store.StoredEvent) (store.StoredEvent, error)
	Endpoints(ctx context.Context, subscribedTo events.Type) ([]events.Endpoint, error)
	LogDelivery(ctx context.Context, d store.Delivery) (store.Delivery, error)
	Settled(ctx context.Context, endpointID, eventID string) (bool, error)
}

// Waiter wakes the dispatcher when messages are written (store.OutboxListener).
type Waiter interface {
	Wait(ctx context.Context, d time.Duration) bool
	Close()
}

// Dispatcher sends the outbox's messages.
type Dispatcher struct {
	Store  Outbox
	Wake   Waiter
	Mailer *mail.Mailer   // nil: email is off, emails are dropped as sent
	Events *events.Sender // nil: events are off
	// PublicBaseURL and AccessSecret make the links in emails: the
	// customer's page with the access token derived from the secret.
	PublicBaseURL string
	AccessSecret  []byte
	SiteName      string
	// Poll is how often due messages are looked for when nothing wakes the
	// dispatcher (retries, reminders); Batch how many it takes at a time,
	// sent Parallel at once; Lease how long a taken message is its own.
	Poll     time.Duration
	Batch    int
	Parallel int
	Lease    time.Duration
	// GiveUpAfter: a message still failing this long after its change is
	// given up, logged and counted. Backoff grows from FirstRetry to MaxRetry.
	GiveUpAfter time.Duration
	FirstRetry  time.Duration
	MaxRetry    time.Duration
	Logger      *slog.Logger
	// Failed, if set, is called for each message given up.
	Failed func(key string)
}

// Run sends due messages until ctx ends, then closes its Waiter. Database
// trouble is logged and waited out: the messages stay in the outbox.
func (d *Dispatcher) Run(ctx context.Context) {
	defer d.Wake.Close()
	for {
		msgs, err := d.Store.ClaimDue(ctx, d.Batch, d.Lease)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.Logger.Warn("Outbox unreachable; retrying", "error", err)
		}
		d.sendAll(ctx, msgs)
		if len(msgs) == d.Batch {
			continue // more are due
		}
		if !d.Wake.Wait(ctx, d.Poll) {
			return
		}
	}
}

// sendAll sends msgs, Parallel at a time, and records each outcome.
func (d *Dispatcher) sendAll(ctx context.Context, msgs []store.Message) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, max(d.Parallel, 1))
	for _, m := range msgs {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			d.settle(ctx, m, d.send(ctx, m))
		}()
	}
	wg.Wait()
}

// errSkip marks a message that needs sending no more.
type errSkip struct{ why string }

func (e errSkip) Error() string { return e.why }

// errRefused marks a message its target refused for good.
type errRefused struct{ error }

func (e errRefused) Unwrap() error { return e.error }

// settle records what came of sending m.
func (d *Dispatcher) settle(ctx context.Context, m store.Message, err error) {
	var skip errSkip
	var refused errRefused
	var rerr error
	switch {
	case err == nil:
		rerr = d.Store.Delivered(ctx, m, "")
	case errors.As(err, &skip):
		rerr = d.Store.Delivered(ctx, m, skip.why)
	case errors.As(err, &refused), time.Since(m.OccurredAt) >= d.GiveUpAfter:
		d.Logger.Error("Notification given up", "job_id", m.JobID, "message", m.Key, "attempts", m.Attempts, "error", err)
		if d.Failed != nil {
			d.Failed(m.Key)
		}
		rerr = d.Store.GiveUp(ctx, m, err)
	default:
		d.Logger.Warn("Notification not delivered yet", "job_id", m.JobID, "message", m.Key, "attempts", m.Attempts, "error", err)
		rerr = d.Store.RetryAt(ctx, m, time.Now().Add(d.backoff(m.Attempts)), err)
	}
	if rerr != nil {
		// The lease runs out and the message is tried again: at least once.
		d.Logger.Warn("Could not record a notification's outcome", "job_id", m.JobID, "message", m.Key, "error", rerr)
	}
}

// backoff is the wait before try attempts+1: FirstRetry doubled per try,
// at most MaxRetry.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	wait := d.FirstRetry
	for i := 1; i < attempts && wait < d.MaxRetry; i++ {
		wait *= 2
	}
	return min(wait, d.MaxRetry)
}

// send sends one message.
func (d *Dispatcher) send(ctx context.Context, m store.Message) error {
	if kind, seq, ok := m.Email(); ok {
		return d.email(ctx, m.JobID, kind, seq)
	}
	if typ, attempt, ok := m.Event(); ok {
		return d.event(ctx, m.JobID, events.Type(typ), attempt, m.OccurredAt)
	}
	return errRefused{fmt.Errorf("unknown message %q", m.Key)}
}

var mailKinds = map[string]mail.Kind{
	jobs.EmailPaymentReceived:   mail.KindPaymentReceived,
	jobs.EmailImageReady:        mail.KindImageReady,
	jobs.EmailExpiringSoon:      mail.KindExpiringSoon,
	jobs.EmailFailedRefunded:    mail.KindFailedRefunded,
	jobs.EmailPaymentProcessing: mail.KindPaymentProcessing,
	jobs.EmailRefundAttention:   mail.KindRefundAttention,
}

// email sends one email about the job. Its Message-ID is derived from the
// job, kind and number, so a repeat after a lost answer is the same email.
// A reminder is not sent once the customer has downloaded the image, or
// once the link has expired.
func (d *Dispatcher) email(ctx context.Context, jobID, kindName string, seq int) error {
	kind, ok := mailKinds[kindName]
	if !ok {
		return errRefused{fmt.Errorf("unknown email %q", kindName)}
	}
	if d.Mailer == nil {
		return errSkip{"email is off"}
	}
	job, err := d.job(ctx, jobID)
	if err != nil {
		return err
	}
	if kindName == jobs.EmailExpiringSoon && (job.DownloadedAt != nil || job.DownloadExpiredAt != nil) {
		return errSkip{"downloaded or expired already"}
	}
	// Admin-only kinds (refund-needs-attention) go to the admin alone: mail.Send routes them.
	msg := mail.Message{Kind: kind, JobID: job.ID, To: customerEmail(job), Seq: seq, Data: d.mailData(job)}
	if err := d.Mailer.Send(ctx, msg); err != nil {
		if mail.Permanent(err) {
			return errRefused{err}
		}
		return err
	}
	return nil
}

// job reads the message's job; a job that is gone is skipped, not retried.
func (d *Dispatcher) job(ctx context.Context, id string) (store.Job, error) {
	job, err := d.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return job, errSkip{"the job is gone"}
	}
	return job, err
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

// pageURL is job j's page for its customer, with the access token in it.
func (d *Dispatcher) pageURL(j store.Job) string {
	return d.PublicBaseURL + "/jobs/" + url.PathEscape(j.ID) + "?token=" + token.Access(d.AccessSecret, j.ID)
}

func (d *Dispatcher) mailData(j store.Job) mail.MessageData {
	md := mail.MessageData{
		JobURL:       d.pageURL(j),
		Resolution:   string(j.Resolution),
		OutputWidth:  j.OutputWidth,
		OutputHeight: j.OutputHeight,
		AmountCents:  j.PriceCents,
		Currency:     j.Currency,
		SiteName:     d.SiteName,
	}
	if j.AmountPaidCents != nil {
		md.AmountCents = *j.AmountPaidCents
	}
	if j.RefundAmountCents != nil && j.RefundedAt != nil {
		md.AmountCents = *j.RefundAmountCents
	}
	if j.DownloadToken != nil && token.IsAlnum(*j.DownloadToken, token.DownloadLength) {
		md.DownloadURL = d.PublicBaseURL + "/v1/downloads/" + *j.DownloadToken
	}
	if j.DownloadExpiresAt != nil {
		md.ExpiresAt = *j.DownloadExpiresAt
	}
	if j.FailureReason != nil {
		md.Reason = *j.FailureReason
	}
	// Shown to the admin only (refund-needs-attention).
	if j.RefundError != nil {
		md.Detail = *j.RefundError
	}
	if j.PaymentIntentID != nil {
		md.PaymentID = *j.PaymentIntentID
	}
	return md
}

// event stores the event (its ID is stable per job, type and attempt; its
// bytes are those of the first try) and POSTs it to every enabled endpoint
// subscribed to its type that has not settled it yet, logging each try.
// Receivers deduplicate on the ID. Endpoints and their secrets are read
// from the database.
func (d *Dispatcher) event(ctx context.Context, jobID string, typ events.Type, attempt int, at time.Time) error {
	if !typ.Valid() {
		return errRefused{fmt.Errorf("unknown event type %q", typ)}
	}
	if d.Events == nil {
		return errSkip{"events are off"}
	}
	job, err := d.job(ctx, jobID)
	if err != nil {
		return err
	}
	body, err := events.New(typ, job.ID, attempt, at, eventData(job)).Marshal()
	if err != nil {
		return errRefused{err}
	}
	ev, err := d.Store.SaveEvent(ctx, store.StoredEvent{ID: events.NewID(job.ID, typ, attempt), Type: typ, JobID: job.ID, Payload: body})
	if err != nil {
		return err
	}
	eps, err := d.Store.Endpoints(ctx, typ)
	if err != nil {
		return err
	}
	var errs []error
	retry := false
	for _, ep := range eps {
		if settled, err := d.Store.Settled(ctx, ep.ID, ev.ID); err != nil {
			return err
		} else if settled {
			continue
		}
		res, err := d.Events.Deliver(ctx, ep, ev.ID, ev.Payload)
		if _, lerr := d.Store.LogDelivery(ctx, store.Delivery{
			EndpointID: ep.ID, EventID: ev.ID, Outcome: events.OutcomeOf(err), StatusCode: res.StatusCode,
			Error: events.LogError(err), DurationMS: res.Duration.Milliseconds(),
		}); lerr != nil {
			// The log is the record of what was acknowledged: without it the
			// event goes out again, which receivers deduplicate.
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
		return errRefused{err}
	}
}

func eventData(j store.Job) events.Data {
	ed := events.Data{
		Status: string(j.Status), Resolution: string(j.Resolution),
		PriceCents: j.PriceCents, Currency: j.Currency,
	}
	if j.AmountPaidCents != nil {
		ed.AmountPaidCents = *j.AmountPaidCents
	}
	if j.PaymentIntentID != nil {
		ed.PaymentIntentID = *j.PaymentIntentID
	}
	if j.Status == jobs.StatusCompleted {
		ed.DownloadExpiresAt = j.DownloadExpiresAt
	}
	if j.FailureReason != nil {
		ed.FailureReason = *j.FailureReason
	}
	if j.RefundAmountCents != nil {
		ed.RefundedCents = *j.RefundAmountCents
	}
	return ed
}
