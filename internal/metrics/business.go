package metrics

import (
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"hires/internal/jobs"
)

// Final job statuses, the values of hires_jobs_finished_total's label.
const (
	JobCompleted = "completed"
	JobFailed    = "failed"
	JobAbandoned = "abandoned"
)

// Upsampler API operations, the values of hires_upsampler_request_seconds's label.
const (
	UpsamplerSubmit = "submit"
	UpsamplerStatus = "status"
)

// Business is what the worker's activities record. A nil *Business records
// nothing, so activities built without metrics (as in unit tests) work.
type Business struct {
	jobsFinished     *prometheus.CounterVec
	refunds          prometheus.Counter
	refundedCents    prometheus.Counter
	revenueCents     prometheus.Counter
	upsamplerSeconds *prometheus.HistogramVec
	upsamplerCredits prometheus.Counter
	refundAttention  prometheus.Counter
	refundFailures   prometheus.Counter
	jobsFailed       *prometheus.CounterVec
	notifyGivenUp    *prometheus.CounterVec
}

// failureReasons are the values of hires_jobs_failed_total's reason label:
// the failure reasons jobs record; any other counts as "other".
var failureReasons = []string{
	jobs.ReasonCheckoutFailed, jobs.ReasonUpsamplerRejected, jobs.ReasonUpsamplerFailed,
	jobs.ReasonUpsamplerTimeout, jobs.ReasonUpsamplerNoOutput, jobs.ReasonResultFetchFailed,
	jobs.ReasonResultInvalid, jobs.ReasonUpsamplerSubmitErr, jobs.ReasonTerminated, jobs.ReasonCancelled,
}

// otherReason labels a failure reason not in failureReasons.
const otherReason = "other"

// Business registers (once) and returns the business metrics.
func (r *Registry) Business() *Business {
	if r == nil {
		return nil
	}
	r.businessOnce.Do(func() {
		b := &Business{
			jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: Namespace, Name: "jobs_finished_total",
				Help: "Jobs that reached a final status (completed, failed, abandoned), counted when the status is recorded.",
			}, []string{"status"}),
			refunds: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: Namespace, Name: "refunds_total",
				Help: "Refunds recorded (Stripe refunded the payment, or it was already refunded).",
			}),
			refundedCents: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: Namespace, Name: "refunded_cents_total",
				Help: "Amount refunded, in cents of the configured currency.",
			}),
			revenueCents: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: Namespace, Name: "revenue_cents_total",
				Help: "Payments recorded (late ones included), in cents of the configured currency; refunds are in hires_refunded_cents_total.",
			}),
			upsamplerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Namespace: Namespace, Name: "upsampler_request_seconds",
				Help:    "Duration of Upsampler API calls (submit, status), successful or not.",
				Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
			}, []string{"op"}),
			upsamplerCredits: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: Namespace, Name: "upsampler_credits_total",
				Help: "Upsampler credits spent, as Upsampler reported them for completed jobs.",
			}),
			refundAttention: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: Namespace, Name: "refunds_needing_attention_total",
				Help: "Refunds Stripe kept refusing until they were handed to an admin (payment status refund_needs_attention).",
			}),
			refundFailures: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: Namespace, Name: "refund_failures_total",
				Help: "Refund attempts that failed (Stripe refused, or kept erroring) and were recorded as payment status refund_failed; the workflow retries them.",
			}),
			jobsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: Namespace, Name: "jobs_failed_total",
				Help: "Jobs recorded as failed, by failure reason (upsampler_timeout: the processing deadline passed; terminated: the reconciliation sweep failed a job whose workflow was terminated or timed out).",
			}, []string{"reason"}),
			notifyGivenUp: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: Namespace, Name: "notifications_given_up_total",
				Help: "Emails and integration events given up: refused for good by their target, or failing for NOTIFY_GIVE_UP_AFTER.",
			}, []string{"kind"}),
		}
		r.reg.MustRegister(b.jobsFinished, b.refunds, b.refundedCents, b.revenueCents, b.upsamplerSeconds, b.upsamplerCredits, b.refundAttention,
			b.refundFailures, b.jobsFailed, b.notifyGivenUp)
		for _, s := range []string{JobCompleted, JobFailed, JobAbandoned} {
			b.jobsFinished.WithLabelValues(s) // show zeros from the start
		}
		for _, reason := range append(failureReasons, otherReason) {
			b.jobsFailed.WithLabelValues(reason)
		}
		for _, kind := range []string{"email", "event"} {
			b.notifyGivenUp.WithLabelValues(kind)
		}
		for _, op := range []string{UpsamplerSubmit, UpsamplerStatus} {
			b.upsamplerSeconds.WithLabelValues(op)
		}
		r.business = b
	})
	return r.business
}

// JobFinished counts a job reaching status (JobCompleted, JobFailed, JobAbandoned).
func (b *Business) JobFinished(status string) {
	if b != nil {
		b.jobsFinished.WithLabelValues(status).Inc()
	}
}

// JobFailedBecause counts a job recorded as failed with reason (one of the
// jobs.Reason* values); JobFinished(JobFailed) counts it among final statuses.
func (b *Business) JobFailedBecause(reason string) {
	if b == nil {
		return
	}
	if !slices.Contains(failureReasons, reason) {
		reason = otherReason
	}
	b.jobsFailed.WithLabelValues(reason).Inc()
}

// RefundFailed counts a failed refund attempt recorded as refund_failed.
func (b *Business) RefundFailed() {
	if b != nil {
		b.refundFailures.Inc()
	}
}

// Refunded counts a recorded refund of cents.
func (b *Business) Refunded(cents int64) {
	if b != nil {
		b.refunds.Inc()
		b.refundedCents.Add(nonNegative(float64(cents)))
	}
}

// RefundNeedsAttention counts a refund handed to an admin.
func (b *Business) RefundNeedsAttention() {
	if b != nil {
		b.refundAttention.Inc()
	}
}

// Paid counts a recorded payment of cents.
func (b *Business) Paid(cents int64) {
	if b != nil {
		b.revenueCents.Add(nonNegative(float64(cents)))
	}
}

// UpsamplerRequest observes one call to Upsampler's API.
func (b *Business) UpsamplerRequest(op string, d time.Duration) {
	if b != nil {
		b.upsamplerSeconds.WithLabelValues(op).Observe(d.Seconds())
	}
}

// UpsamplerCredits counts the credits a completed job cost.
func (b *Business) UpsamplerCredits(credits float64) {
	if b != nil {
		b.upsamplerCredits.Add(nonNegative(credits))
	}
}

// nonNegative keeps a bad input from panicking a counter.
func nonNegative(v float64) float64 {
	if v < 0 || v != v {
		return 0
	}
	return v
}

// Webhook sources, the values of hires_webhook_verification_failures_total's label.
const (
	SourceStripe    = "stripe"
	SourceUpsampler = "upsampler"
)

// Webhooks counts the API's rejected webhooks. A nil *Webhooks counts nothing.
type Webhooks struct {
	failures *prometheus.CounterVec
}

// Webhooks registers (once) and returns the webhook metrics.
func (r *Registry) Webhooks() *Webhooks {
	if r == nil {
		return nil
	}
	r.webhooksOnce.Do(func() {
		w := &Webhooks{failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "webhook_verification_failures_total",
			Help: "Webhooks rejected because they did not verify: a bad Stripe signature, or an unknown Upsampler callback URL or secret.",
		}, []string{"source"})}
		r.reg.MustRegister(w.failures)
		for _, s := range []string{SourceStripe, SourceUpsampler} {
			w.failures.WithLabelValues(s)
		}
		r.webhooks = w
	})
	return r.webhooks
}

// VerificationFailed counts a webhook from source that did not verify.
func (w *Webhooks) VerificationFailed(source string) {
	if w != nil {
		w.failures.WithLabelValues(source).Inc()
	}
}

// NotificationGivenUp counts an email or event the outbox gave up on; key
// is the message's (email:... or event:...).
func (b *Business) NotificationGivenUp(key string) {
	if b != nil {
		kind, _, _ := strings.Cut(key, ":")
		if kind != "email" && kind != "event" {
			kind = "email"
		}
		b.notifyGivenUp.WithLabelValues(kind).Inc()
	}
}
