package upsamplersim

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"time"
)

// Request is one API request the simulator received (control calls under
// /_sim/ are not recorded). Headers are not kept, so the key never is.
type Request struct {
	Time       time.Time   `json:"time"`
	Method     string      `json:"method"`
	Path       string      `json:"path"`
	StatusCode int         `json:"statusCode"`
	Authorized bool        `json:"authorized"`
	Body       string      `json:"body,omitempty"`   // raw submit body, capped at 64 KiB
	Submit     *SubmitBody `json:"submit,omitempty"` // decoded submit body, as received
	JobID      string      `json:"jobId,omitempty"`  // job created by this submit
	// AnswerLost says how the answer to a submit that created a job was
	// lost (Behavior.LoseAnswerRate): "502", or "dropped" (StatusCode 0).
	AnswerLost string `json:"answerLost,omitempty"`
}

// JobInfo is a snapshot of one job, for assertions.
type JobInfo struct {
	ID                 string    `json:"id"`
	Endpoint           string    `json:"endpoint"`
	Status             string    `json:"status"`
	CreditCost         int       `json:"creditCost"`
	ImageURL           string    `json:"imageUrl,omitempty"`
	CompressedImageURL string    `json:"compressedImageUrl,omitempty"`
	Error              string    `json:"error,omitempty"`
	InputImageURL      string    `json:"inputImageUrl"`
	InputImageType     string    `json:"inputImageType"`
	UpscaleFactor      float64   `json:"upscaleFactor"`
	Webhook            string    `json:"webhook,omitempty"`
	InputWidth         int       `json:"inputWidth,omitempty"`
	InputHeight        int       `json:"inputHeight,omitempty"`
	OutputWidth        int       `json:"outputWidth,omitempty"`
	OutputHeight       int       `json:"outputHeight,omitempty"`
	WebhookAttempts    int       `json:"webhookAttempts"`   // POSTs made
	WebhookDeliveries  int       `json:"webhookDeliveries"` // 2xx answers
	CreatedAt          time.Time `json:"createdAt"`
	FinishedAt         time.Time `json:"finishedAt,omitzero"`
	ExpiresAt          time.Time `json:"expiresAt,omitzero"` // result files 404 from then on

	// WebhookDeliveredAt is when a callback was first answered 2xx.
	WebhookDeliveredAt time.Time `json:"webhookDeliveredAt,omitzero"`
	// AnswerLost says how the answer to the submit that created the job
	// was lost (Behavior.LoseAnswerRate): "502", "dropped", or "".
	AnswerLost string `json:"answerLost,omitempty"`
}

// Behavior returns the behaviour in force.
func (s *Server) Behavior() Behavior {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behavior
}

// SetBehavior replaces the behaviour for jobs submitted from now on.
func (s *Server) SetBehavior(b Behavior) error {
	if err := b.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	s.behavior = b
	s.mu.Unlock()
	return nil
}

// Requests returns the recorded API requests, oldest first (at most 10k).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Jobs returns a snapshot of the stored jobs, oldest first.
func (s *Server) Jobs() []JobInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]JobInfo, 0, len(s.order))
	for _, id := range s.order {
		j := s.jobs[id]
		v := j.viewLocked()
		out = append(out, JobInfo{
			ID: j.id, Endpoint: j.endpoint, Status: j.status, CreditCost: j.creditCost,
			ImageURL: v.ImageURL, CompressedImageURL: v.CompressedImageURL, Error: j.errMsg,
			InputImageURL: j.input.ImageURL, InputImageType: j.input.InputImageType,
			UpscaleFactor: *j.input.UpscaleFactor, Webhook: j.webhook,
			InputWidth: j.inW, InputHeight: j.inH, OutputWidth: j.outW, OutputHeight: j.outH,
			WebhookAttempts: j.webhookAttempts, WebhookDeliveries: j.webhookDeliveries,
			CreatedAt: j.created, FinishedAt: j.finished, ExpiresAt: j.expires,
			WebhookDeliveredAt: j.webhookDeliveredAt, AnswerLost: j.answerLost,
		})
	}
	return out
}

// Reset restores the initial behaviour and forgets requests and jobs. Jobs
// already running finish in the background but are no longer visible.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behavior = s.initial
	s.requests = nil
	s.jobs = make(map[string]*job)
	s.order = nil
	s.submitted = make(map[string]bool)
}

func (s *Server) handleGetBehavior(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Behavior())
}

// handlePostBehavior merges a partial JSON object onto the current
// behaviour; unknown fields are an error so typos do not pass silently.
func (s *Server) handlePostBehavior(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wire := s.behavior.wire()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wire); err != nil {
		writeError(w, http.StatusBadRequest, "invalid behavior: "+err.Error())
		return
	}
	b := wire.behavior()
	if err := b.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.behavior = b
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) handleRequests(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Requests())
}

func (s *Server) handleClearRequests(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleJobs(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Jobs())
}

func (s *Server) handleReset(w http.ResponseWriter, r *http.Request) {
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
