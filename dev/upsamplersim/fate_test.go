package upsamplersim

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/internal/upsampler"
)

func TestFateShares(t *testing.T) {
	tests := []struct {
		name               string
		b                  Behavior
		wantFail, wantSlow float64 // expected shares of 4000 images
	}{
		{"well behaved", Behavior{}, 0, 0},
		{"all fail", Behavior{FailRate: 1, SlowRate: 1}, 1, 0},
		{"all slow", Behavior{SlowRate: 1}, 0, 1},
		{"a share of each", Behavior{FailRate: 0.2, SlowRate: 0.5, Seed: 7}, 0.2, 0.4}, // slow: half of the 80% that do not fail
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 4000
			fail, slow := 0, 0
			for i := range n {
				f := tt.b.Fate(fmt.Sprintf("http://127.0.0.1:8098/images/%dx100.png", 100+i))
				require.False(t, f.Fail && f.Slow, "a failing job is not also slow")
				if f.Fail {
					fail++
				}
				if f.Slow {
					slow++
				}
			}
			assert.InDelta(t, tt.wantFail, float64(fail)/n, 0.03, "fail share")
			assert.InDelta(t, tt.wantSlow, float64(slow)/n, 0.03, "slow share")
		})
	}
}

func TestFateIsReproducible(t *testing.T) {
	b := Behavior{FailRate: 0.5, SlowRate: 0.5, Seed: 42}
	other := b
	other.Seed = 43
	differs := 0
	for i := range 200 {
		path := fmt.Sprintf("/images/%dx120.png", 100+i)
		f := b.Fate("http://127.0.0.1:8098" + path)
		assert.Equal(t, f, b.Fate("http://127.0.0.1:40001"+path), "the host (its port) does not matter")
		assert.Equal(t, f, b.Fate("http://127.0.0.1:8098"+path), "same seed, same image, same fate")
		if f != other.Fate("http://127.0.0.1:8098"+path) {
			differs++
		}
	}
	assert.Greater(t, differs, 50, "another seed picks other jobs")
	byQuery := map[Fate]bool{}
	for v := range 20 {
		byQuery[b.Fate(fmt.Sprintf("http://h/a.png?v=%d", v))] = true
	}
	assert.Greater(t, len(byQuery), 1, "the query is part of the key")
}

func TestValidateRates(t *testing.T) {
	tests := []struct {
		name    string
		b       Behavior
		wantErr string
	}{
		{"zero", Behavior{}, ""},
		{"bounds", Behavior{FailRate: 1, SlowRate: 0, SlowDelay: time.Second}, ""},
		{"negative fail rate", Behavior{FailRate: -0.1}, "failRate"},
		{"fail rate above 1", Behavior{FailRate: 1.5}, "failRate"},
		{"NaN slow rate", Behavior{SlowRate: math.NaN()}, "slowRate"},
		{"negative slow delay", Behavior{SlowDelay: -time.Second}, "negative"},
		{"lose-answer rate above 1", Behavior{LoseAnswerRate: 2}, "loseAnswerRate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.b.Validate()
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestRatesWireForm(t *testing.T) {
	in := Behavior{FailRate: 0.25, SlowRate: 0.5, SlowDelay: 3 * time.Second, Seed: -9, LoseAnswerRate: 0.1}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	for _, want := range []string{`"failRate":0.25`, `"slowRate":0.5`, `"slowDelay":"3s"`, `"seed":-9`, `"loseAnswerRate":0.1`} {
		assert.Contains(t, string(data), want)
	}
	var out Behavior
	require.NoError(t, json.Unmarshal(data, &out))
	assert.Equal(t, in, out)
}

// The server follows each job's fate: the chosen ones fail, the slow ones
// take SlowDelay, the others ProcessingDelay.
func TestServerFollowsFate(t *testing.T) {
	src := origin(t, map[string][]byte{
		"/a.png": gradientPNG(t, 10, 10), "/b.png": gradientPNG(t, 10, 10), "/c.png": gradientPNG(t, 10, 10),
		"/d.png": gradientPNG(t, 10, 10), "/e.png": gradientPNG(t, 10, 10), "/f.png": gradientPNG(t, 10, 10),
	})
	sim, ts, c := newSim(t, Options{})
	const slowDelay = 600 * time.Millisecond
	b := Behavior{FailRate: 0.4, SlowRate: 0.5, SlowDelay: slowDelay, Seed: 3}
	code, out := post(t, ts.URL+"/_sim/behavior", "", "application/json",
		`{"failRate":0.4,"slowRate":0.5,"slowDelay":"600ms","seed":3}`)
	require.Equal(t, http.StatusOK, code, out)
	require.Equal(t, b, sim.Behavior())

	seen := map[Fate]int{}
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		imageURL := src.URL + "/" + name + ".png"
		fate := b.Fate(imageURL)
		seen[fate]++
		start := time.Now()
		job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: imageURL, UpscaleFactor: 2})
		require.NoError(t, err)
		done := waitDone(t, c, job.ID)
		took := time.Since(start)
		switch {
		case fate.Fail:
			assert.Equal(t, upsampler.StatusFailed, done.Status, name)
			assert.Equal(t, ErrInternal, done.Error, name)
		case fate.Slow:
			assert.Equal(t, upsampler.StatusSuccess, done.Status, name)
			assert.GreaterOrEqual(t, took, slowDelay, "%s is slow", name)
		default:
			assert.Equal(t, upsampler.StatusSuccess, done.Status, name)
			assert.Less(t, took, slowDelay, "%s is not slow", name)
		}
	}
	require.Len(t, seen, 3, "seed 3 gives these six images every fate; pick another seed if the draw changes")
}

func TestFateLosesAShareOfAnswers(t *testing.T) {
	const n = 4000
	b := Behavior{FailRate: 0.2, SlowRate: 0.25, LoseAnswerRate: 0.3, Seed: 11}
	without := b
	without.LoseAnswerRate = 0
	lost, dropped := 0, 0
	for i := range n {
		u := fmt.Sprintf("http://127.0.0.1:8098/images/%dx130.png", 100+i)
		f := b.Fate(u)
		g := without.Fate(u)
		assert.Equal(t, g.Fail, f.Fail, "losing answers changes no other fate")
		assert.Equal(t, g.Slow, f.Slow, "losing answers changes no other fate")
		assert.False(t, g.LoseAnswer || g.DropConnection, "rate 0 loses nothing")
		assert.False(t, f.DropConnection && !f.LoseAnswer, "only a lost answer is dropped")
		if f.LoseAnswer {
			lost++
		}
		if f.DropConnection {
			dropped++
		}
	}
	assert.InDelta(t, 0.3, float64(lost)/n, 0.03, "lost share")
	assert.InDelta(t, 0.5, float64(dropped)/float64(lost), 0.06, "half of them dropped")
}

// An image whose fate loses the answer: its first submit creates the job,
// which runs and calls back, but the client gets a 502 or a dropped
// connection (an ambiguous failure); a resend of the image is answered.
func TestServerLosesFirstAnswer(t *testing.T) {
	files := map[string][]byte{}
	for i := range 40 {
		files[fmt.Sprintf("/%d.png", i)] = gradientPNG(t, 8, 8)
	}
	src := origin(t, files)
	b := Behavior{LoseAnswerRate: 0.5, Seed: 5}
	// Pick one image of each kind of loss, and one whose answer comes.
	want := map[string]string{} // "502", "dropped", "" -> image URL
	for i := range 40 {
		u := fmt.Sprintf("%s/%d.png", src.URL, i)
		f := b.Fate(u)
		kind := ""
		switch {
		case f.DropConnection:
			kind = lostAsDrop
		case f.LoseAnswer:
			kind = lostAs502
		}
		if want[kind] == "" {
			want[kind] = u
		}
	}
	require.Len(t, want, 3, "seed 5 gives these images every kind of answer; pick another seed if the draw changes")

	sim, _, c := newSim(t, Options{})
	require.NoError(t, sim.SetBehavior(b))
	h := newHook(t)
	for _, kind := range []string{lostAs502, lostAsDrop, ""} {
		t.Run("lost as "+kind, func(t *testing.T) {
			before := len(sim.Jobs())
			job, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: want[kind], UpscaleFactor: 2, WebhookURL: h.URL})
			jobs := sim.Jobs()
			require.Len(t, jobs, before+1, "the submit created a job whatever its answer")
			created := jobs[len(jobs)-1]
			assert.Equal(t, kind, created.AnswerLost)
			if kind == "" {
				require.NoError(t, err)
				assert.Equal(t, created.ID, job.ID)
				return
			}
			require.Error(t, err)
			assert.True(t, upsampler.Ambiguous(err), "the client cannot tell whether it was taken: %v", err)
			var apiErr *upsampler.APIError
			if kind == lostAs502 {
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, http.StatusBadGateway, apiErr.StatusCode)
			} else {
				assert.NotErrorAs(t, err, &apiErr, "no answer at all")
			}
			reqs := sim.Requests()
			last := reqs[len(reqs)-1]
			assert.Equal(t, created.ID, last.JobID)
			assert.Equal(t, kind, last.AnswerLost)
			assert.Equal(t, map[string]int{lostAs502: 502, lostAsDrop: 0}[kind], last.StatusCode)

			// The job runs and calls back, naming itself.
			assert.Equal(t, upsampler.StatusSuccess, waitDone(t, c, created.ID).Status)
			require.Eventually(t, func() bool {
				for _, call := range h.got() {
					if cb, err := upsampler.ParseCallback(call.body); err == nil && cb.ID == created.ID {
						return true
					}
				}
				return false
			}, 5*time.Second, 10*time.Millisecond, "callback of the job whose answer was lost")
			require.Eventually(t, func() bool {
				for _, j := range sim.Jobs() {
					if j.ID == created.ID {
						return !j.WebhookDeliveredAt.IsZero()
					}
				}
				return false
			}, 5*time.Second, 10*time.Millisecond)

			// Sending the image again is answered.
			again, err := c.Submit(context.Background(), upsampler.SubmitRequest{ImageURL: want[kind], UpscaleFactor: 2})
			require.NoError(t, err)
			assert.NotEqual(t, created.ID, again.ID)
			jobs = sim.Jobs()
			assert.Empty(t, jobs[len(jobs)-1].AnswerLost)
		})
	}
}
