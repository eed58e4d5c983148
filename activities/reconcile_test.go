package activities

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	enumspb "go.temporal.io/api/enums/v1"

	"hires/internal/jobs"
	"hires/internal/store"
)

func TestResumable(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	open, closed := now.Add(time.Minute), now.Add(-time.Minute)
	const notFound = enumspb.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED
	for _, tt := range []struct {
		name     string
		status   jobs.Status
		expires  *time.Time
		workflow enumspb.WorkflowExecutionStatus
		want     bool
	}{
		{"never started, session open: the retry resumes it", jobs.StatusAwaitingPayment, &open, notFound, true},
		{"never started, session expired", jobs.StatusAwaitingPayment, &closed, notFound, false},
		{"never started, no expiry known", jobs.StatusAwaitingPayment, nil, notFound, false},
		{"its workflow was terminated", jobs.StatusAwaitingPayment, &open, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, false},
		{"paid, never started", jobs.StatusPending, &open, notFound, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := store.OwedJob{Status: tt.status, CheckoutExpiresAt: tt.expires}
			assert.Equal(t, tt.want, resumable(j, tt.workflow, now))
		})
	}
}
