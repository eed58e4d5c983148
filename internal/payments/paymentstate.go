package payments

import (
	"context"
	"fmt"

	"github.com/stripe/stripe-go/v76"
)

// PaymentState is what Stripe says about a payment and its refunds: the
// PaymentIntent and its latest charge. It is the evidence to read before
// starting a new refund attempt (see RefundParams.Attempt).
type PaymentState struct {
	PaymentIntentID     string
	Status              string // the PaymentIntent's: succeeded, processing, requires_payment_method, …
	AmountCents         int64  // the PaymentIntent's amount
	AmountRefundedCents int64  // latest_charge.amount_refunded, over all refunds of the charge
	ChargeID            string // latest_charge.id; empty before any charge
	Refunded            bool   // latest_charge.refunded: true once fully refunded
	Currency            string
}

// FullyRefunded reports whether nothing is left to refund.
func (s PaymentState) FullyRefunded() bool {
	return s.Refunded || (s.AmountCents > 0 && s.AmountRefundedCents >= s.AmountCents)
}

// PaymentState reads a PaymentIntent with its latest charge expanded, so the
// refunded amount comes in the same read as the amount paid.
func (c *Client) PaymentState(ctx context.Context, paymentIntentID string) (PaymentState, error) {
	if err := validatePaymentIntentID(paymentIntentID); err != nil {
		return PaymentState{}, fmt.Errorf("payments: payment state: %w", err)
	}
	params := &stripe.PaymentIntentParams{}
	params.AddExpand("latest_charge")
	params.Context = ctx

	pi, err := c.api.PaymentIntents.Get(paymentIntentID, params)
	if err != nil {
		return PaymentState{}, fmt.Errorf("payments: payment state of %s: %w", paymentIntentID, c.apiError(err))
	}
	return paymentStateFrom(pi), nil
}

func paymentStateFrom(pi *stripe.PaymentIntent) PaymentState {
	out := PaymentState{
		PaymentIntentID: pi.ID,
		Status:          string(pi.Status),
		AmountCents:     pi.Amount,
		Currency:        string(pi.Currency),
	}
	if ch := pi.LatestCharge; ch != nil {
		// Unexpanded (a bare ID), only the ID is set.
		out.ChargeID = ch.ID
		out.AmountRefundedCents = ch.AmountRefunded
		out.Refunded = ch.Refunded
	}
	return out
}
