package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSchedule(t *testing.T) {
	for _, window := range []time.Duration{time.Minute, 115 * time.Second, 10 * time.Minute} {
		faults := Schedule(window)
		kinds := map[FaultKind]int{}
		for i, f := range faults {
			kinds[f.Kind]++
			assert.Positive(t, f.At, "%s: while jobs are in flight, not before", f.Kind)
			assert.Less(t, f.At, window, "%s: inside the window", f.Kind)
			if i > 0 {
				prev := faults[i-1]
				// The previous outage is over (restart included) well before the next.
				assert.GreaterOrEqual(t, f.At-prev.At-prev.Down, 4*time.Second, "window %s: %s too close to %s", window, f.Kind, prev.Kind)
			}
		}
		assert.GreaterOrEqual(t, kinds[FaultWorkerKill], 3, "the worker is killed at least 3 times")
		assert.Equal(t, 1, kinds[FaultAPIRestart])
		assert.Equal(t, 1, kinds[FaultPostgres])
		assert.Equal(t, 1, kinds[FaultTemporal])
	}
}
