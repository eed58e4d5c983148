package jobs

import "slices"

// Transition is one legal change of a job's status.
type Transition struct {
	From, To Status
	// Why is what makes it, for the reader.
	Why string
}

// Transitions is every change a job's status can make. The workflow moves
// a job only along them, and the job record's compare-and-set refuses any
// other; a status never goes backwards except by an admin's retry.
var Transitions = []Transition{
	{StatusAwaitingPayment, StatusPending, "the customer paid"},
	{StatusAwaitingPayment, StatusAbandoned, "the payment window closed, or Checkout expired or the bank debit failed, or an admin cancelled it unpaid"},
	{StatusAwaitingPayment, StatusFailed, "Stripe refused the Checkout Session, or the workflow was terminated"},
	{StatusPending, StatusProcessing, "Upsampler accepted the image"},
	{StatusPending, StatusFailed, "Upsampler refused the image, or it was cancelled or terminated"},
	{StatusProcessing, StatusCompleted, "the result is stored and its download link made"},
	{StatusProcessing, StatusFailed, "Upsampler failed or timed out, the result was bad, or it was cancelled or terminated"},
	{StatusFailed, StatusPending, "an admin's retry"},
}

// CanMove reports whether a job may go from one status to the other.
func CanMove(from, to Status) bool {
	return slices.ContainsFunc(Transitions, func(t Transition) bool { return t.From == from && t.To == to })
}
