package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewPlanCounts(t *testing.T) {
	tests := []struct {
		n                 int
		paid, late, never int
	}{
		{n: 300, paid: 165, late: 60, never: 75},
		{n: 20, paid: 11, late: 4, never: 5},
		{n: 1, paid: 1},
		{n: 0},
	}
	for _, tt := range tests {
		plan := NewPlan(1, tt.n, time.Minute)
		require.Len(t, plan, tt.n)
		got := map[Path]int{}
		for _, p := range plan {
			got[p.Path]++
		}
		assert.Equal(t, tt.paid, got[PathPaid], "n=%d paid", tt.n)
		assert.Equal(t, tt.late, got[PathLate], "n=%d late", tt.n)
		assert.Equal(t, tt.never, got[PathNever], "n=%d never", tt.n)
	}
}

func TestNewPlanIsSeeded(t *testing.T) {
	a, b, c := NewPlan(7, 300, time.Minute), NewPlan(7, 300, time.Minute), NewPlan(8, 300, time.Minute)
	assert.Equal(t, a, b, "same seed, same plan")
	assert.NotEqual(t, a, c, "another seed, another plan")
}

func TestNewPlanJobs(t *testing.T) {
	plan := NewPlan(3, 1000, 100*time.Second)
	sizes, keys := map[[2]int]bool{}, map[string]bool{}
	variants := map[string]int{}
	for i, p := range plan {
		assert.Equal(t, i, p.Index)
		assert.False(t, sizes[[2]int{p.Width, p.Height}], "size %dx%d used twice", p.Width, p.Height)
		sizes[[2]int{p.Width, p.Height}] = true
		assert.False(t, keys[p.Key], "key %s used twice", p.Key)
		keys[p.Key] = true
		assert.GreaterOrEqual(t, p.Width, 100, "the API's minimum side")
		assert.GreaterOrEqual(t, p.Height, 100)
		assert.Equal(t, time.Duration(i)*100*time.Millisecond, p.CreateAt, "spread evenly")
		assert.True(t, p.PayAfter >= 500*time.Millisecond && p.PayAfter < 6500*time.Millisecond, "pay delay %s", p.PayAfter)
		switch {
		case p.Path == PathPaid:
			assert.False(t, p.ExpiredEvent, "a paid job is not expired first")
			if p.StaleExpiry {
				variants["stale"]++
			}
		case p.ExpiredEvent:
			assert.False(t, p.StaleExpiry)
			variants["expired"]++
		}
		if p.Resolution == "8x" {
			assert.Equal(t, 8, p.Factor())
			variants["8x"]++
		} else {
			assert.Equal(t, "4x", p.Resolution)
			assert.Equal(t, 4, p.Factor())
		}
	}
	// Shares are drawn: roughly right, never all or nothing.
	assert.InDelta(t, 550*shareStaleExpiry, variants["stale"], 40)
	assert.InDelta(t, 450*shareExpiredEvent, variants["expired"], 45)
	assert.InDelta(t, 1000*share8x, variants["8x"], 30)
}
