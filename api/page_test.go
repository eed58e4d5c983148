package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"hires/internal/jobs"
)

// The customer's page speaks of the money as it stands.
func TestPageHeadline(t *testing.T) {
	paidAt := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		v    JobView
		want string
	}{
		{"awaiting", JobView{Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentPending}, "Waiting for your payment"},
		{"bank debit processing", JobView{Status: jobs.StatusAwaitingPayment, PaymentStatus: jobs.PaymentProcessing}, "Your payment is being processed"},
		{"paid", JobView{Status: jobs.StatusPending, PaymentStatus: jobs.PaymentPaid, PaidAt: &paidAt}, "Payment received"},
		{"abandoned after a failed debit", JobView{Status: jobs.StatusAbandoned, PaymentStatus: jobs.PaymentFailed}, "This order was not paid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, headline(tt.v)[0])
		})
	}
}
