package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/dev/upsamplersim"
)

func TestNewPlanCounts(t *testing.T) {
	tests := []struct {
		n, parked int
		want      map[Path]int
	}{
		{n: 300, parked: 1000, want: map[Path]int{PathPaid: 135, PathDelayed: 15, PathDelayedLate: 12, PathDelayedFailed: 9,
			PathLate: 54, PathNever: 75, PathParked: 1040}}, // 2% and 2% more to terminate and cancel
		{n: 20, parked: 4, want: map[Path]int{PathPaid: 9, PathDelayed: 1, PathDelayedLate: 1, PathDelayedFailed: 1, PathLate: 4,
			PathNever: 4, PathParked: 6}},
		{n: 1, parked: 2, want: map[Path]int{PathNever: 1, PathParked: 2}},
		{n: 0, want: map[Path]int{}},
	}
	for _, tt := range tests {
		plan := NewPlan(1, tt.n, tt.parked, time.Minute, StandInBehavior(1))
		require.Len(t, plan, tt.n+tt.want[PathParked])
		got := map[Path]int{}
		for i, p := range plan {
			got[p.Path]++
			assert.Equal(t, i >= tt.n, p.Path == PathParked, "parked jobs come after the others")
		}
		assert.Equal(t, tt.want, got, "n=%d parked=%d", tt.n, tt.parked)
	}
}

func TestNewPlanIsSeeded(t *testing.T) {
	b := StandInBehavior(7)
	a, same, other := NewPlan(7, 300, 100, time.Minute, b), NewPlan(7, 300, 100, time.Minute, b), NewPlan(8, 300, 100, time.Minute, b)
	assert.Equal(t, a, same, "same seed, same plan")
	assert.NotEqual(t, a, other, "another seed, another plan")
}

func TestNewPlanJobs(t *testing.T) {
	b := StandInBehavior(3)
	plan := NewPlan(3, 1000, 500, 100*time.Second, b)
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
		assert.Equal(t, b.Fate("http://127.0.0.1:1"+p.ImagePath()), p.Fate, "the stand-in's fate of its image")
		if p.Path == PathParked {
			assert.Zero(t, p.CreateAt, "parked jobs are created before the traffic")
		} else {
			assert.Equal(t, time.Duration(i)*100*time.Millisecond, p.CreateAt, "spread evenly")
		}
		assert.True(t, p.PayAfter >= 500*time.Millisecond && p.PayAfter < 6500*time.Millisecond, "pay delay %s", p.PayAfter)
		assert.True(t, p.SettleAfter >= 10*time.Second && p.SettleAfter < 25*time.Second, "settle delay %s", p.SettleAfter)
		switch {
		case p.Path == PathPaid:
			assert.False(t, p.ExpiredEvent, "a paid job is not expired first")
			if p.StaleExpiry {
				variants["stale"]++
			}
		case p.ExpiredEvent:
			assert.Contains(t, []Path{PathLate, PathNever}, p.Path)
			assert.False(t, p.StaleExpiry)
			variants["expired"]++
		}
		if p.Path == PathDelayed {
			assert.False(t, p.Fate.Fail, "a bank debit settled in time is one Upsampler makes")
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
	assert.InDelta(t, 450*shareStaleExpiry, variants["stale"], 40)
	assert.InDelta(t, 430*shareExpiredEvent, variants["expired"], 45)
	assert.InDelta(t, 1500*share8x, variants["8x"], 40)
}

// Each act goes to jobs whose fate allows it, in its share.
func TestNewPlanActs(t *testing.T) {
	const spread = time.Minute
	plan := NewPlan(1, 300, 1000, spread, StandInBehavior(1))
	acts := map[Act]int{}
	candidates := map[string]int{}
	var lastAt time.Duration
	for _, p := range plan {
		switch {
		case p.Path == PathPaid && p.Fate.Fail:
			candidates["failing"]++
		case p.Path == PathPaid && p.Fate.Slow:
			candidates["slow"]++
		}
		if p.Act == ActNone {
			assert.Zero(t, p.ActAt)
			continue
		}
		acts[p.Act]++
		switch p.Act {
		case ActRefundByHand, ActRefundAttention, ActTerminateRefunding, ActCancelRefunding:
			assert.Equal(t, PathPaid, p.Path, "%s", p.Act)
			assert.True(t, p.Fate.Fail, "%s: Upsampler fails it, so it is refunded", p.Act)
			assert.True(t, p.Act.refused(), "%s: Stripe refuses its refunds", p.Act)
		case ActTerminateProcessing, ActCancelProcessing:
			assert.Equal(t, PathPaid, p.Path, "%s", p.Act)
			assert.True(t, p.Fate.Slow, "%s: slow, so it can be caught processing", p.Act)
			assert.False(t, p.Act.refused())
		case ActTerminateAwaiting, ActCancelAwaiting:
			assert.Equal(t, PathParked, p.Path, "%s", p.Act)
			assert.GreaterOrEqual(t, p.ActAt, lastAt, "in index order")
			assert.Less(t, p.ActAt, spread+5*time.Second, "within the traffic")
			lastAt = p.ActAt
		}
	}
	share := func(a Act) float64 {
		for _, s := range actShares {
			if s.act == a {
				return s.share
			}
		}
		return 0
	}
	for _, a := range []Act{ActRefundByHand, ActRefundAttention, ActTerminateRefunding, ActCancelRefunding} {
		assert.Equal(t, int(float64(candidates["failing"])*share(a)+0.5), acts[a], "%s of %d failing", a, candidates["failing"])
		assert.Positive(t, acts[a], "%s", a)
	}
	for _, a := range []Act{ActTerminateProcessing, ActCancelProcessing} {
		assert.Equal(t, int(float64(candidates["slow"])*share(a)+0.5), acts[a], "%s of %d slow", a, candidates["slow"])
		assert.Positive(t, acts[a], "%s", a)
	}
	assert.Equal(t, 20, acts[ActTerminateAwaiting])
	assert.Equal(t, 20, acts[ActCancelAwaiting])

	assert.True(t, ActTerminateAwaiting.terminates() && ActTerminateProcessing.terminates() && ActTerminateRefunding.terminates())
	assert.False(t, ActCancelAwaiting.terminates() || ActRefundByHand.terminates() || ActNone.terminates())
}

// With no candidates, no act; with few, at least one of each.
func TestNewPlanActsFewCandidates(t *testing.T) {
	for _, p := range NewPlan(1, 30, 0, time.Minute, upsamplersim.Behavior{Seed: 1}) {
		assert.Equal(t, ActNone, p.Act, "nothing fails or is slow")
	}
	plan := NewPlan(1, 10, 4, time.Minute, upsamplersim.Behavior{Seed: 1})
	acts := map[Act]int{}
	for _, p := range plan {
		acts[p.Act]++
	}
	assert.Equal(t, 1, acts[ActTerminateAwaiting], "at least one, as there are four parked jobs")
	assert.Equal(t, 1, acts[ActCancelAwaiting])
	assert.Equal(t, 4, acts[ActNone]-10, "and four stay parked")
}

func TestPathKinds(t *testing.T) {
	for _, p := range Paths {
		kinds := 0
		for _, k := range []bool{p.paidInTime(), p.paidLate(), p == PathNever || p == PathDelayedFailed || p == PathParked} {
			if k {
				kinds++
			}
		}
		assert.Equal(t, 1, kinds, "%s is of exactly one kind", p)
	}
	assert.True(t, PathDelayed.delayed() && PathDelayedLate.delayed() && PathDelayedFailed.delayed())
	assert.False(t, PathPaid.delayed() || PathLate.delayed() || PathParked.delayed())
}
