package activities

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/internal/store"
)

var (
	refused      = fmt.Errorf("store: record notification: failed to connect: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")})
	shuttingDown = fmt.Errorf("store: record notification: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"})
	uniqueBroken = fmt.Errorf("store: record submission: %w", &pgconn.PgError{Code: "23505", Message: "duplicate key"})
)

func TestDBUnavailable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{refused, true},
		{shuttingDown, true},
		{fmt.Errorf("x: %w", &pgconn.PgError{Code: "08006"}), true},
		{uniqueBroken, false},
		{fmt.Errorf("x: %w", store.ErrInvalidTransition), false},
		{fmt.Errorf("x: %w", store.ErrNotFound), false},
		{context.DeadlineExceeded, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, dbUnavailable(tt.err), "%v", tt.err)
	}
}

// The record of an effect already made is written through an outage, not
// given up: giving up would repeat the effect on the activity's retry.
func TestKeepRecording(t *testing.T) {
	tests := []struct {
		name      string
		failures  []error // returned by the first writes, in order
		wantCalls int
		wantErr   error
	}{
		{"written at once", nil, 1, nil},
		{"through an outage", []error{refused, shuttingDown, refused}, 4, nil},
		{"an answer is final", []error{uniqueBroken}, 1, uniqueBroken},
		{"a refused transition is final", []error{store.ErrInvalidTransition}, 1, store.ErrInvalidTransition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := keepRecording(context.Background(), func(context.Context) error {
				calls++
				if calls <= len(tt.failures) {
					return tt.failures[calls-1]
				}
				return nil
			})
			require.ErrorIs(t, err, tt.wantErr)
			assert.Equal(t, tt.wantCalls, calls)
		})
	}
}

func TestKeepRecordingStopsWithTheActivity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	calls := 0
	err := keepRecording(ctx, func(context.Context) error { calls++; return refused })
	require.ErrorIs(t, err, refused, "the last error, for the activity's retry")
	assert.GreaterOrEqual(t, calls, 2)
	assert.LessOrEqual(t, calls, 4, "backing off")
}
