package upsamplersim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/google/uuid"
	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // registers the WebP decoder
)

// job is one upscale job. All fields are guarded by Server.mu.
type job struct {
	id, endpoint string
	input        SubmitInput
	webhook      string
	baseURL      string // for result URLs

	status               string
	creditCost           int
	errMsg               string
	omitImageURL         bool
	inW, inH, outW, outH int
	png, jpg             []byte
	created, finished    time.Time
	expires              time.Time
	webhookAttempts      int
	webhookDeliveries    int
	webhookDeliveredAt   time.Time // first 2xx answer to a callback
	answerLost           string    // how its submit answer was lost: "", lostAs502, lostAsDrop
}

// jobView is the JSON object of /status, the submit answer and webhooks.
type jobView struct {
	ID                 string `json:"id"`
	Status             string `json:"status"`
	CreditCost         int    `json:"creditCost,omitempty"`
	ImageURL           string `json:"imageUrl,omitempty"`
	CompressedImageURL string `json:"compressedImageUrl,omitempty"`
	Error              string `json:"error,omitempty"`
}

func (j *job) viewLocked() jobView {
	v := jobView{ID: j.id, Status: j.status, CreditCost: j.creditCost}
	switch j.status {
	case StatusSuccess:
		if !j.omitImageURL {
			v.ImageURL = j.baseURL + "/files/" + j.id + ".png"
		}
		v.CompressedImageURL = j.baseURL + "/files/" + j.id + "-compressed.jpg"
	case StatusFailed:
		v.CreditCost = 0 // failed jobs are refunded
		v.Error = j.errMsg
	}
	return v
}

// createJob stores a new job and starts its runner. ok is false after Close.
func (s *Server) createJob(endpoint string, body SubmitBody, baseURL string) (*job, jobView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, jobView{}, false
	}
	b := s.behavior
	failThis := false
	if s.behavior.FailNext > 0 {
		s.behavior.FailNext--
		failThis = true
	}
	fate := b.Fate(body.Input.ImageURL)
	failThis = failThis || fate.Fail
	if fate.Slow {
		b.ProcessingDelay = b.SlowDelay // this job only: b is a copy
	}
	// Only an image's first answer is lost: a resend is answered.
	lost, key := "", fateKey(body.Input.ImageURL)
	if fate.LoseAnswer && !s.submitted[key] {
		lost = lostAs502
		if fate.DropConnection {
			lost = lostAsDrop
		}
	}
	s.submitted[key] = true

	j := &job{
		id:         uuid.NewString(),
		endpoint:   endpoint,
		input:      body.Input,
		webhook:    body.Webhook,
		baseURL:    baseURL,
		status:     StatusInQueue,
		created:    time.Now(),
		answerLost: lost,
	}
	if len(s.order) >= s.opts.MaxJobs {
		delete(s.jobs, s.order[0])
		s.order = s.order[1:]
	}
	s.jobs[j.id] = j
	s.order = append(s.order, j.id)

	if b.InsufficientCredits {
		j.status, j.errMsg, j.finished = StatusFailed, ErrInsufficientCredits, j.created
		return j, j.viewLocked(), true
	}
	s.wg.Add(1)
	go s.run(j, b, failThis)
	return j, j.viewLocked(), true
}

// run drives one job through its states, honouring the behaviour that was
// in force when it was submitted.
func (s *Server) run(j *job, b Behavior, failThis bool) {
	defer s.wg.Done()
	start := j.created // immutable after creation
	if !sleepUntil(s.ctx, start.Add(b.ProcessingDelay/2)) {
		return
	}
	s.update(func() { j.status = StatusInProgress })
	if b.NeverFinish {
		return
	}

	var res *result
	var errMsg string
	if failThis {
		errMsg = ErrInternal
	} else {
		var err error
		res, err = s.process(j)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			errMsg = err.Error()
		}
	}
	if !sleepUntil(s.ctx, start.Add(b.ProcessingDelay)) {
		return
	}

	var view jobView
	s.update(func() {
		j.finished = time.Now()
		if errMsg != "" {
			j.status, j.errMsg = StatusFailed, errMsg
		} else {
			j.status = StatusSuccess
			j.png, j.jpg = res.png, res.jpg
			j.expires = j.finished.Add(s.opts.ResultTTL)
			j.omitImageURL = b.SuccessWithoutImageURL
		}
		view = j.viewLocked()
	})
	if view.Error != "" {
		s.log.Info("upsampler-sim: job failed", "job", j.id, "error", view.Error)
	} else {
		s.log.Info("upsampler-sim: job succeeded", "job", j.id, "credit_cost", view.CreditCost)
	}

	if j.webhook == "" || b.DropWebhooks {
		return
	}
	if !sleepUntil(s.ctx, time.Now().Add(b.WebhookDelay)) {
		return
	}
	body, _ := json.Marshal(view)
	copies := 1
	if b.DuplicateWebhooks {
		copies = 2
	}
	for range copies {
		for attempt := 0; attempt <= b.WebhookRetries; attempt++ {
			if attempt > 0 && !sleepUntil(s.ctx, time.Now().Add(time.Duration(attempt)*200*time.Millisecond)) {
				return
			}
			if s.postWebhook(j, body) {
				break
			}
		}
	}
}

// postWebhook makes one unsigned callback attempt and reports a 2xx answer.
func (s *Server) postWebhook(j *job, body []byte) bool {
	ctx, cancel := context.WithTimeout(s.ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.webhook, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "upsampler-sim")
	resp, err := s.opts.HTTPClient.Do(req)
	ok := false
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		ok = resp.StatusCode >= 200 && resp.StatusCode <= 299
	}
	s.update(func() {
		j.webhookAttempts++
		if ok {
			j.webhookDeliveries++
			if j.webhookDeliveredAt.IsZero() {
				j.webhookDeliveredAt = time.Now()
			}
		}
	})
	if err != nil {
		s.log.Warn("upsampler-sim: webhook failed", "job", j.id, "err", err)
	} else {
		s.log.Info("upsampler-sim: webhook sent", "job", j.id, "status", resp.StatusCode)
	}
	return ok
}

type result struct{ png, jpg []byte }

// jobError is a failure the customer sees as the job's `error`.
type jobError string

func (e jobError) Error() string { return string(e) }

// process fetches, decodes, upscales and encodes the job's image.
func (s *Server) process(j *job) (*result, error) {
	s.mu.Lock()
	imageURL, factor, endpoint := j.input.ImageURL, *j.input.UpscaleFactor, j.endpoint
	s.mu.Unlock()

	data, err := s.fetch(imageURL)
	if err != nil {
		return nil, err
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || (format != "png" && format != "jpeg" && format != "webp") {
		return nil, jobError("Input is not a supported image (PNG, JPEG or WebP)")
	}
	outW := max(1, int(math.Round(float64(cfg.Width)*factor)))
	outH := max(1, int(math.Round(float64(cfg.Height)*factor)))
	if px := int64(outW) * int64(outH); px > s.opts.MaxOutputPixels {
		return nil, jobError(fmt.Sprintf("Output image would have %d pixels; the maximum is %d", px, s.opts.MaxOutputPixels))
	}
	cost := creditCost(endpoint, outW, outH)
	s.update(func() {
		j.inW, j.inH, j.outW, j.outH, j.creditCost = cfg.Width, cfg.Height, outW, outH, cost
	})

	// Decoding and scaling are the memory-heavy part; bound how many run.
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-s.ctx.Done():
		return nil, errClosed
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, jobError("Input image is corrupt: " + err.Error())
	}
	dst := image.NewRGBA(image.Rect(0, 0, outW, outH))
	var scaler draw.Interpolator = draw.CatmullRom
	if outW*outH > 4_000_000 {
		scaler = draw.ApproxBiLinear // CatmullRom is slow on big outputs
	}
	scaler.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)

	var pngBuf, jpgBuf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&pngBuf, dst); err != nil {
		return nil, jobError(ErrInternal)
	}
	if err := jpeg.Encode(&jpgBuf, dst, &jpeg.Options{Quality: 80}); err != nil {
		return nil, jobError(ErrInternal)
	}
	return &result{png: pngBuf.Bytes(), jpg: jpgBuf.Bytes()}, nil
}

// fetch downloads the input like the real service: it must be public,
// answer 200, and fit in MaxInputBytes.
func (s *Server) fetch(imageURL string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(s.ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, imageURL, nil)
	if err != nil {
		return nil, jobError("Failed to download input image: bad URL")
	}
	req.Header.Set("User-Agent", "upsampler-sim")
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		if s.ctx.Err() != nil {
			return nil, errClosed
		}
		return nil, jobError("Failed to download input image: " + err.Error())
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, jobError(fmt.Sprintf("Failed to download input image: HTTP %d", resp.StatusCode))
	}
	tooLarge := jobError(fmt.Sprintf("Input image is larger than %d bytes", s.opts.MaxInputBytes))
	if resp.ContentLength > s.opts.MaxInputBytes {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, s.opts.MaxInputBytes+1))
	if err != nil {
		if s.ctx.Err() != nil {
			return nil, errClosed
		}
		return nil, jobError("Failed to download input image: " + err.Error())
	}
	if int64(len(data)) > s.opts.MaxInputBytes {
		return nil, tooLarge
	}
	return data, nil
}

// creditCost follows the published prices: precise 1 credit per 4 output
// MP, smart/dynamic 1 per MP; always at least 1.
func creditCost(endpoint string, outW, outH int) int {
	perMP := 1.0
	if endpoint == "precise-upscale" {
		perMP = 0.25
	}
	return max(1, int(math.Ceil(float64(outW)*float64(outH)/1e6*perMP)))
}

func (s *Server) update(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// sleepUntil waits for t; false means the server closed first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
