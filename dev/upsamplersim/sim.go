// Package upsamplersim is a local stand-in for the Upsampler API that really
// upscales images. It emulates what is known of the real service (see
// shared/reference/external-apis.md §B): Bearer auth, an asynchronous job
// that fetches imageUrl, IN_QUEUE → IN_PROGRESS → SUCCESS|FAILED, an
// unsigned JSON webhook, and result URLs that expire.
//
// Tests and `make run` can script its misbehaviour through SetBehavior or
// the loopback-only control API under /_sim/ (not part of the real API).
package upsamplersim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Job statuses, as the real API spells them.
const (
	StatusInQueue    = "IN_QUEUE"
	StatusInProgress = "IN_PROGRESS"
	StatusSuccess    = "SUCCESS"
	StatusFailed     = "FAILED"
)

// Error texts the real service is known to use (smi's fixtures).
const (
	ErrInternal            = "Failed to process image due to an internal error. Your credits have been refunded."
	ErrInsufficientCredits = "Insufficient credits"
)

// Defaults for zero Options fields.
const (
	DefaultResultTTL       = 3 * time.Hour
	DefaultMaxInputBytes   = 50 << 20
	DefaultMaxOutputPixels = 1_000_000_000
	DefaultMaxJobs         = 10_000
)

const (
	maxRequestBody   = 1 << 20 // submit bodies
	maxRecorded      = 10_000  // requests kept for Requests()
	maxRecordedBody  = 64 << 10
	webhookTimeout   = 5 * time.Second
	fetchTimeout     = 60 * time.Second
	processingSlots  = 2 // concurrent decode/scale/encode, to bound memory
	maxSweepInterval = time.Minute
)

// Options configures a Server.
type Options struct {
	// APIKey is the only accepted Bearer token. If empty, every API call is
	// refused.
	APIKey string
	// PublicURL is the base URL where this server is reachable, used to build
	// result URLs. If empty, it is taken from each submit request's Host.
	PublicURL string
	// ProcessingDelay is the initial Behavior.ProcessingDelay.
	ProcessingDelay time.Duration
	// ResultTTL is how long result files are served (default 3h).
	ResultTTL time.Duration
	// MaxInputBytes caps the fetched input (default 50 MiB).
	MaxInputBytes int64
	// MaxOutputPixels caps outW*outH (default 1e9).
	MaxOutputPixels int64
	// MaxJobs caps stored jobs; the oldest are forgotten (default 10k).
	MaxJobs int
	// HTTPClient fetches inputs and posts webhooks (default: 30 s timeout).
	HTTPClient *http.Client
	// Logger receives progress logs (default: discarded).
	Logger *slog.Logger
}

// Server is the simulator. It is an http.Handler; call Close when done.
type Server struct {
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	initial Behavior

	ctx    context.Context // cancelled by Close; parent of all background work
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{}

	mu       sync.Mutex
	closed   bool
	behavior Behavior
	jobs     map[string]*job
	order    []string // job ids, oldest first, for eviction
	requests []Request
	// submitted holds the images (by Fate's key) submitted at least once:
	// LoseAnswerRate loses only an image's first answer.
	submitted map[string]bool
}

// New builds a Server and starts its result sweeper.
func New(opts Options) *Server {
	if opts.ResultTTL <= 0 {
		opts.ResultTTL = DefaultResultTTL
	}
	if opts.MaxInputBytes <= 0 {
		opts.MaxInputBytes = DefaultMaxInputBytes
	}
	if opts.MaxOutputPixels <= 0 {
		opts.MaxOutputPixels = DefaultMaxOutputPixels
	}
	if opts.MaxJobs <= 0 {
		opts.MaxJobs = DefaultMaxJobs
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")

	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		initial:   Behavior{ProcessingDelay: max(opts.ProcessingDelay, 0)},
		ctx:       ctx,
		cancel:    cancel,
		slots:     make(chan struct{}, processingSlots),
		jobs:      make(map[string]*job),
		submitted: make(map[string]bool),
	}
	s.behavior = s.initial
	s.routes()

	s.wg.Add(1)
	go s.sweep()
	return s
}

// Close stops all background work (jobs, webhooks, the sweeper) and waits
// for it. Jobs still running stay unfinished. Later submits get 503.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	for _, ep := range []string{"precise-upscale", "smart-upscale", "dynamic-upscale"} {
		s.mux.HandleFunc("POST /api/v1/"+ep, s.handleSubmit(ep))
	}
	s.mux.HandleFunc("GET /api/v1/status/{id}", s.handleStatus)
	s.mux.HandleFunc("GET /files/{name}", s.handleFile)

	s.mux.HandleFunc("GET /_sim/behavior", s.handleGetBehavior)
	s.mux.HandleFunc("POST /_sim/behavior", s.handlePostBehavior)
	s.mux.HandleFunc("GET /_sim/requests", s.handleRequests)
	s.mux.HandleFunc("DELETE /_sim/requests", s.handleClearRequests)
	s.mux.HandleFunc("GET /_sim/jobs", s.handleJobs)
	s.mux.HandleFunc("POST /_sim/reset", s.handleReset)
}

// ServeHTTP records API traffic and guards the control API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		if !isLoopback(r.RemoteAddr) {
			writeError(w, http.StatusForbidden, "the simulator control API is loopback-only")
			return
		}
		s.mux.ServeHTTP(w, r)
		return
	}
	rec := &Request{Time: time.Now().UTC(), Method: r.Method, Path: r.URL.Path}
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	s.mux.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), recordKey{}, rec)))
	rec.StatusCode = sw.code
	if rec.AnswerLost == lostAsDrop {
		rec.StatusCode = 0 // no answer
	}
	s.mu.Lock()
	if len(s.requests) >= maxRecorded {
		// Drop the oldest tenth at once so trimming stays cheap.
		s.requests = slices.Clone(s.requests[maxRecorded/10:])
	}
	s.requests = append(s.requests, *rec)
	s.mu.Unlock()
}

// authorized checks "Authorization: Bearer <key>" exactly.
func (s *Server) authorized(r *http.Request) bool {
	if s.opts.APIKey == "" {
		return false
	}
	want := "Bearer " + s.opts.APIKey
	got := r.Header.Get("Authorization")
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// SubmitBody is the decoded body of a submit request.
type SubmitBody struct {
	Webhook string      `json:"webhook,omitempty"`
	Input   SubmitInput `json:"input"`
}

// SubmitInput is SubmitBody.input; unknown fields are ignored.
type SubmitInput struct {
	ImageURL           string   `json:"imageUrl"`
	InputImageType     string   `json:"inputImageType,omitempty"`
	UpscaleFactor      *float64 `json:"upscaleFactor,omitempty"`
	ShouldEnhanceFaces *bool    `json:"shouldEnhanceFaces,omitempty"`
	ShouldPreserveBlur *bool    `json:"shouldPreserveBlur,omitempty"`
}

func (s *Server) handleSubmit(endpoint string) http.HandlerFunc {
	maxFactor := 4.0
	if endpoint == "precise-upscale" {
		maxFactor = 16
	}
	return func(w http.ResponseWriter, r *http.Request) {
		rec := record(r)
		if !s.authorized(r) {
			writeError(w, http.StatusUnauthorized, "Invalid or missing API key")
			return
		}
		rec.Authorized = true
		b := s.Behavior()
		if code := b.FailSubmitStatus; code != 0 {
			if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, code, simulatedMessage(code))
			return
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeError(w, http.StatusBadRequest, "Content-Type must be application/json")
			return
		}
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "Request body is too large or unreadable")
			return
		}
		rec.Body = string(raw[:min(len(raw), maxRecordedBody)])
		var body SubmitBody
		if err := json.Unmarshal(raw, &body); err != nil {
			writeError(w, http.StatusBadRequest, "Invalid JSON body: "+err.Error())
			return
		}
		received := body // validate fills defaults; keep what was sent
		rec.Submit = &received
		if msg := validate(&body, maxFactor); msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}

		j, view, ok := s.createJob(endpoint, body, s.publicURL(r))
		if !ok {
			writeError(w, http.StatusServiceUnavailable, "Simulator is shutting down")
			return
		}
		rec.JobID = j.id
		s.log.Info("upsampler-sim: job queued", "job", j.id, "endpoint", endpoint, "factor", *body.Input.UpscaleFactor)

		// The job exists already and runs; by its fate, the answer is lost.
		switch j.answerLost {
		case lostAs502:
			rec.AnswerLost = lostAs502
			writeError(w, http.StatusBadGateway, "Bad Gateway (simulated: the job was accepted, its answer lost)")
			return
		case lostAsDrop:
			rec.AnswerLost = lostAsDrop
			dropConnection(w)
			return
		}
		// The job exists already; a slow answer models a lost response.
		if b.SubmitDelay > 0 {
			t := time.NewTimer(b.SubmitDelay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			case <-s.ctx.Done():
				return
			}
		}
		writeJSON(w, http.StatusOK, view)
	}
}

// How a submit's answer was lost (LoseAnswerRate).
const (
	lostAs502  = "502"     // answered 502 Bad Gateway
	lostAsDrop = "dropped" // connection closed without an answer
)

// dropConnection closes the client's connection without an answer, as a
// proxy or a crash between accepting the job and answering would.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// No hijacking (HTTP/2): abort the handler, which resets the stream.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0) // a reset, not an orderly close
	}
	_ = conn.Close()
}

// validate checks a submit body and fills defaults; "" means valid.
func validate(b *SubmitBody, maxFactor float64) string {
	in := &b.Input
	if in.ImageURL == "" {
		return "input.imageUrl is required"
	}
	if !isHTTPURL(in.ImageURL) {
		return "input.imageUrl must be an absolute http(s) URL"
	}
	if in.UpscaleFactor == nil {
		return "input.upscaleFactor is required"
	}
	if f := *in.UpscaleFactor; math.IsNaN(f) || f < 1 || f > maxFactor {
		return fmt.Sprintf("input.upscaleFactor must be between 1 and %g", maxFactor)
	}
	switch in.InputImageType {
	case "":
		in.InputImageType = "universal"
	case "realism", "anime", "universal":
	default:
		return "input.inputImageType must be one of realism, anime, universal"
	}
	if b.Webhook != "" && !isHTTPURL(b.Webhook) {
		return "webhook must be an absolute http(s) URL"
	}
	return ""
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		writeError(w, http.StatusUnauthorized, "Invalid or missing API key")
		return
	}
	record(r).Authorized = true
	s.mu.Lock()
	j, ok := s.jobs[r.PathValue("id")]
	var view jobView
	if ok {
		view = j.viewLocked()
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Job not found")
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// handleFile serves /files/{id}.png and /files/{id}-compressed.jpg until
// they expire.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	id, compressed := strings.CutSuffix(name, "-compressed.jpg")
	if !compressed {
		var ok bool
		if id, ok = strings.CutSuffix(name, ".png"); !ok {
			http.NotFound(w, r)
			return
		}
	}
	s.mu.Lock()
	var data []byte
	if j, ok := s.jobs[id]; ok && j.status == StatusSuccess && time.Now().Before(j.expires) {
		data = j.png
		if compressed {
			data = j.jpg
		}
	}
	s.mu.Unlock()
	if data == nil {
		http.NotFound(w, r)
		return
	}
	ctype := "image/png"
	if compressed {
		ctype = "image/jpeg"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(data)
	}
}

// publicURL is the base for result URLs.
func (s *Server) publicURL(r *http.Request) string {
	if s.opts.PublicURL != "" {
		return s.opts.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// sweep frees expired result files so memory stays bounded.
func (s *Server) sweep() {
	defer s.wg.Done()
	every := min(max(s.opts.ResultTTL/2, 50*time.Millisecond), maxSweepInterval)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			for _, j := range s.jobs {
				if j.png != nil && !now.Before(j.expires) {
					j.png, j.jpg = nil, nil
				}
			}
			s.mu.Unlock()
		}
	}
}

func simulatedMessage(code int) string {
	switch code {
	case http.StatusTooManyRequests:
		return "Rate limit exceeded"
	case http.StatusUnauthorized:
		return "Invalid or missing API key"
	default:
		return http.StatusText(code) + " (simulated)"
	}
}

type recordKey struct{}

// record is the Request being recorded for r (a throwaway one if none).
func record(r *http.Request) *Request {
	if rec, ok := r.Context().Value(recordKey{}).(*Request); ok {
		return rec
	}
	return &Request{}
}

type statusWriter struct {
	http.ResponseWriter
	code    int
	written bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.written {
		w.code, w.written = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Hijack).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// errClosed is returned when work is cut short by Close.
var errClosed = errors.New("upsampler-sim: closed")
