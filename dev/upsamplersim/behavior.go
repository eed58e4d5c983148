package upsamplersim

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/url"
	"time"
)

// Behavior scripts how the simulator misbehaves. The zero value (apart from
// ProcessingDelay) is the faithful, well-behaved Upsampler.
//
// In JSON the durations are Go duration strings ("2s", "150ms"); numbers are
// read as nanoseconds.
type Behavior struct {
	// ProcessingDelay is how long new jobs stay IN_QUEUE+IN_PROGRESS.
	ProcessingDelay time.Duration
	// FailSubmitStatus, when non-zero (400–599), makes every submit answer
	// that HTTP status with {"error": ...} and create no job.
	FailSubmitStatus int
	// FailNext makes the next N jobs end FAILED with an internal error.
	FailNext int
	// SuccessWithoutImageURL makes SUCCESS answers omit imageUrl.
	SuccessWithoutImageURL bool
	// DropWebhooks never sends callbacks (exercises the polling fallback).
	DropWebhooks bool
	// DuplicateWebhooks sends every callback twice.
	DuplicateWebhooks bool
	// NeverFinish leaves new jobs IN_PROGRESS forever.
	NeverFinish bool

	// Extras from the fake's wish list (external-apis.md §B2).

	// SubmitDelay holds the submit answer this long after the job was
	// created, to emulate a hang past the client's timeout: the job exists
	// (and will call back) although the client never saw its id.
	SubmitDelay time.Duration
	// InsufficientCredits makes submits answer 200 with status FAILED and
	// error "Insufficient credits" at once (no callback).
	InsufficientCredits bool
	// WebhookDelay postpones callbacks after the job is terminal.
	WebhookDelay time.Duration
	// WebhookRetries is how many extra attempts a callback gets after a
	// non-2xx answer or a transport error (0–10; the real policy is unknown).
	WebhookRetries int

	// FailRate is the share of jobs (0–1) that end FAILED with an internal
	// error; SlowRate the share of the others (0–1) that take SlowDelay
	// instead of ProcessingDelay. Which jobs is decided by Fate, from Seed
	// and the input image, so that a run is reproducible whatever order the
	// jobs arrive in. FailNext, when set, comes first.
	FailRate  float64
	SlowRate  float64
	SlowDelay time.Duration
	Seed      int64
	// LoseAnswerRate is the share of input images (0–1, by Fate) whose
	// first submission's answer is lost after the job was accepted: the
	// job is created, runs and calls back as usual, but the submit is
	// answered 502 or its connection dropped (half each, by Fate), so the
	// client cannot tell whether Upsampler took it. Later submissions of
	// the same image are answered normally.
	LoseAnswerRate float64
}

const maxWebhookRetries = 10

// behaviorJSON is Behavior's wire form.
type behaviorJSON struct {
	ProcessingDelay        jsonDuration `json:"processingDelay"`
	FailSubmitStatus       int          `json:"failSubmitStatus"`
	FailNext               int          `json:"failNext"`
	SuccessWithoutImageURL bool         `json:"successWithoutImageUrl"`
	DropWebhooks           bool         `json:"dropWebhooks"`
	DuplicateWebhooks      bool         `json:"duplicateWebhooks"`
	NeverFinish            bool         `json:"neverFinish"`
	SubmitDelay            jsonDuration `json:"submitDelay"`
	InsufficientCredits    bool         `json:"insufficientCredits"`
	WebhookDelay           jsonDuration `json:"webhookDelay"`
	WebhookRetries         int          `json:"webhookRetries"`
	FailRate               float64      `json:"failRate"`
	SlowRate               float64      `json:"slowRate"`
	SlowDelay              jsonDuration `json:"slowDelay"`
	Seed                   int64        `json:"seed"`
	LoseAnswerRate         float64      `json:"loseAnswerRate"`
}

func (b Behavior) wire() behaviorJSON {
	return behaviorJSON{
		ProcessingDelay:        jsonDuration(b.ProcessingDelay),
		FailSubmitStatus:       b.FailSubmitStatus,
		FailNext:               b.FailNext,
		SuccessWithoutImageURL: b.SuccessWithoutImageURL,
		DropWebhooks:           b.DropWebhooks,
		DuplicateWebhooks:      b.DuplicateWebhooks,
		NeverFinish:            b.NeverFinish,
		SubmitDelay:            jsonDuration(b.SubmitDelay),
		InsufficientCredits:    b.InsufficientCredits,
		WebhookDelay:           jsonDuration(b.WebhookDelay),
		WebhookRetries:         b.WebhookRetries,
		FailRate:               b.FailRate,
		SlowRate:               b.SlowRate,
		SlowDelay:              jsonDuration(b.SlowDelay),
		Seed:                   b.Seed,
		LoseAnswerRate:         b.LoseAnswerRate,
	}
}

func (w behaviorJSON) behavior() Behavior {
	return Behavior{
		ProcessingDelay:        time.Duration(w.ProcessingDelay),
		FailSubmitStatus:       w.FailSubmitStatus,
		FailNext:               w.FailNext,
		SuccessWithoutImageURL: w.SuccessWithoutImageURL,
		DropWebhooks:           w.DropWebhooks,
		DuplicateWebhooks:      w.DuplicateWebhooks,
		NeverFinish:            w.NeverFinish,
		SubmitDelay:            time.Duration(w.SubmitDelay),
		InsufficientCredits:    w.InsufficientCredits,
		WebhookDelay:           time.Duration(w.WebhookDelay),
		WebhookRetries:         w.WebhookRetries,
		FailRate:               w.FailRate,
		SlowRate:               w.SlowRate,
		SlowDelay:              time.Duration(w.SlowDelay),
		Seed:                   w.Seed,
		LoseAnswerRate:         w.LoseAnswerRate,
	}
}

// MarshalJSON writes durations as Go duration strings.
func (b Behavior) MarshalJSON() ([]byte, error) { return json.Marshal(b.wire()) }

// UnmarshalJSON reads the wire form. Fields absent from data keep their
// current value, so a partial object updates a Behavior in place.
func (b *Behavior) UnmarshalJSON(data []byte) error {
	w := b.wire()
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*b = w.behavior()
	return nil
}

// Validate rejects settings the simulator cannot honour.
func (b Behavior) Validate() error {
	var errs []error
	if b.ProcessingDelay < 0 || b.SubmitDelay < 0 || b.WebhookDelay < 0 || b.SlowDelay < 0 {
		errs = append(errs, errors.New("delays must not be negative"))
	}
	if b.FailSubmitStatus != 0 && (b.FailSubmitStatus < 400 || b.FailSubmitStatus > 599) {
		errs = append(errs, fmt.Errorf("failSubmitStatus %d: want 0 or 400-599", b.FailSubmitStatus))
	}
	if b.FailNext < 0 {
		errs = append(errs, errors.New("failNext must not be negative"))
	}
	if b.WebhookRetries < 0 || b.WebhookRetries > maxWebhookRetries {
		errs = append(errs, fmt.Errorf("webhookRetries %d: want 0-%d", b.WebhookRetries, maxWebhookRetries))
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"failRate", b.FailRate}, {"slowRate", b.SlowRate}, {"loseAnswerRate", b.LoseAnswerRate}} {
		if math.IsNaN(r.v) || r.v < 0 || r.v > 1 {
			errs = append(errs, fmt.Errorf("%s %v: want 0-1", r.name, r.v))
		}
	}
	return errors.Join(errs...)
}

// Fate is what FailRate, SlowRate and LoseAnswerRate decide for one job.
type Fate struct {
	Fail bool // ends FAILED with an internal error
	Slow bool // takes SlowDelay (never set together with Fail)
	// LoseAnswer: the first submission of the image is accepted (the job
	// runs and calls back) but its answer is lost; DropConnection says how:
	// the connection is closed without an answer, else the answer is 502.
	LoseAnswer     bool
	DropConnection bool
}

// Fate draws a job's fate from a source seeded with Seed and the input
// image URL's path and query (not its host, whose port changes between
// runs): the same image always meets the same fate under one seed, and a
// test can predict it.
func (b Behavior) Fate(imageURL string) Fate {
	h := fnv.New64a()
	h.Write([]byte(fateKey(imageURL)))
	r := rand.New(rand.NewPCG(uint64(b.Seed), h.Sum64()))
	fail, slow := r.Float64() < b.FailRate, r.Float64() < b.SlowRate
	// Drawn after the others, so that adding it changed no earlier fate.
	lose, drop := r.Float64() < b.LoseAnswerRate, r.Float64() < 0.5
	return Fate{Fail: fail, Slow: slow && !fail, LoseAnswer: lose, DropConnection: lose && drop}
}

// fateKey is what identifies an image for Fate: its URL's path and query.
func fateKey(imageURL string) string {
	if u, err := url.Parse(imageURL); err == nil {
		return u.RequestURI()
	}
	return imageURL
}

// jsonDuration is a time.Duration that reads and writes "1.5s" strings.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("duration: want a string like \"2s\", got %s", data)
	}
	*d = jsonDuration(n)
	return nil
}
