package jobs

import "testing"

func TestValidStatuses(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{string(StatusAwaitingPayment), true},
		{string(PaymentRefundNeedsAttention), true},
		{string(PaymentProcessing), true},
		{"refunded ", false},
		{"", false},
	}
	for _, tt := range tests {
		got := Status(tt.name).Valid() || PaymentStatus(tt.name).Valid()
		if got != tt.ok {
			t.Errorf("%q valid = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

func TestWorkflowIDs(t *testing.T) {
	id := "6f1c1b52-0f55-4c3e-9d0e-3a1d2b7c8e90"
	if got, ok := JobIDFromWorkflowID(WorkflowID(id)); !ok || got != id {
		t.Errorf("round trip of %s: %s, %v", id, got, ok)
	}
	if LatePaymentWorkflowID(id) == OwedRefundWorkflowID(id) || WorkflowID(id) == OwedRefundWorkflowID(id) {
		t.Error("a job's workflows must have distinct IDs")
	}
}
