package paysim

import (
	"context"
	"fmt"
	"time"

	"hires/internal/payments"
)

// SendChargeRefunded sends charge.refunded for ch as Stripe would once a
// refund went through, e.g. one made by hand in the Dashboard (in tests,
// stripetest.Recorder.RefundByHand, whose Charge has the same fields). Unlike
// ConfirmRefund it does not read the job: ch is sent as given, so set
// ch.JobID for the event to name the job.
func SendChargeRefunded(ctx context.Context, o Options, ch payments.Charge) (Result, error) {
	eventID := payments.NewEventID()
	now := time.Now()
	payload, err := payments.ChargeRefundedEventPayload(eventID, ch, now)
	if err != nil {
		return Result{}, fmt.Errorf("paysim: charge.refunded for %s: %w", ch.PaymentIntentID, err)
	}
	return post(ctx, o, eventID, payload, now)
}
