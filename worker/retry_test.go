package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKeepTrying(t *testing.T) {
	for _, tt := range []struct {
		name     string
		failures int           // tries that fail before one succeeds
		stopIn   time.Duration // ctx ends after this (0: never)
		want     bool
		minTries int
	}{
		{"succeeds at once", 0, 0, true, 1},
		{"succeeds after refusals", 3, 0, true, 4},
		{"the worker stops first", 1 << 30, 30 * time.Millisecond, false, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.stopIn > 0 {
				time.AfterFunc(tt.stopIn, cancel)
			}
			tries := 0
			got := keepTrying(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), "test", time.Millisecond, 4*time.Millisecond,
				func(context.Context) error {
					tries++
					if tries <= tt.failures {
						return errors.New("refused")
					}
					return nil
				})
			require.Equal(t, tt.want, got)
			require.GreaterOrEqual(t, tries, tt.minTries)
			if tt.want {
				require.Equal(t, tt.failures+1, tries, "no try after success")
			}
		})
	}
}
