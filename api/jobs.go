package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"hires/internal/jobs"
	"hires/internal/payments"
	"hires/internal/pricing"
	"hires/internal/sitekey"
	"hires/internal/store"
	"hires/internal/token"
)

// Limits on what a site may order.
const (
	minImageSide = 100    // the original skipped images under 100 px
	maxImageSide = 20_000 // anything larger is not a web image
	// checkoutFloor keeps the session's expiry inside Stripe's 30 min..24 h
	// window with room for a retried creation to still pass validation.
	checkoutFloor = time.Hour
	checkoutCeil  = 24 * time.Hour
)

// CreateJobRequest is the body of POST /v1/jobs.
type CreateJobRequest struct {
	ImageURL     string `json:"image_url"`
	Resolution   string `json:"resolution"`
	Email        string `json:"email"`
	PostID       int64  `json:"post_id"`
	AttachmentID *int64 `json:"attachment_id"`
	ImageWidth   int    `json:"image_width"`
	ImageHeight  int    `json:"image_height"`
}

func (s *Server) createJob(c echo.Context) error {
	req, err := decodeStrict[CreateJobRequest](c.Request().Body)
	if err != nil {
		return err
	}
	idemKey := c.Request().Header.Get("Idempotency-Key")
	if err := validateIdempotencyKey(idemKey); err != nil {
		return err
	}
	quote, err := s.validateJob(&req)
	if err != nil {
		return err
	}
	ctx, site := c.Request().Context(), siteKeyOf(c).Site
	// The request's fingerprint tells a retry from a different request
	// that reuses an idempotency key.
	canon, _ := json.Marshal(req)
	reqHash := sha256.Sum256(canon)
	id := uuid.NewString()
	if idemKey == "" {
		status, body, err := s.createAndStart(ctx, site, id, req, quote, reqHash[:])
		if err != nil {
			return err
		}
		return c.JSON(status, body)
	}

	// Idempotency as Stripe has it: scoped to the site, the first answer
	// kept and replayed, a duplicate in flight refused.
	keyHash := token.Hash("idempotency\x00" + idemKey)
	r, err := s.store.ReserveIdempotency(ctx, site, keyHash, reqHash[:], id, idempotencyLease, s.cfg.IdempotencyKeyTTL)
	switch {
	case err != nil:
		return err
	case errors.Is(r.Conflict, store.ErrIdempotencyMismatch):
		return fail(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
	case errors.Is(r.Conflict, store.ErrIdempotencyInFlight):
		return fail(http.StatusConflict, "idempotency_key_in_use",
			"a request with this Idempotency-Key is in progress; retry after it has finished")
	case r.Replay != nil:
		return s.replay(c, *r.Replay)
	}
	status, body, err := s.createAndStart(ctx, site, r.JobID, req, quote, reqHash[:])
	var ae *apiError
	switch {
	case err == nil:
		kept := body
		kept.AccessToken = "" // derived again on replay: the database never holds it
		stored, _ := json.Marshal(kept)
		err = s.store.CompleteIdempotency(ctx, site, keyHash, status, stored)
	case errors.As(err, &ae) && (ae.status < 500 || ae.status == http.StatusBadGateway):
		// A final answer (Stripe refused the payment page): replayed too.
		stored, _ := json.Marshal(errorBody{Error: ae.body})
		if cerr := s.store.CompleteIdempotency(ctx, site, keyHash, ae.status, stored); cerr != nil {
			s.log.WarnContext(ctx, "keeping an idempotent answer failed", "job_id", r.JobID, "error", cerr)
		}
		return err
	default: // a retry can still succeed: let it resume at once
		if rerr := s.store.ReleaseIdempotency(context.WithoutCancel(ctx), site, keyHash); rerr != nil {
			s.log.WarnContext(ctx, "releasing an idempotency key failed", "job_id", r.JobID, "error", rerr)
		}
		return err
	}
	if err != nil {
		return err
	}
	return c.JSON(status, body)
}

// idempotencyLease is how long a request holds its key: longer than the
// handler's timeout, so a key is never held by two live requests.
const idempotencyLease = time.Minute

// replay answers with a kept response, as the first request got it.
func (s *Server) replay(c echo.Context, r store.StoredResponse) error {
	c.Response().Header().Set("Idempotent-Replayed", "true")
	if r.Status >= 300 {
		return c.JSONBlob(r.Status, r.Body)
	}
	var body CreateJobResponse
	if err := json.Unmarshal(r.Body, &body); err != nil {
		return fmt.Errorf("replay kept answer: %w", err)
	}
	body.AccessToken = token.Access([]byte(s.cfg.AccessTokenSecret), body.ID)
	return c.JSON(r.Status, body)
}

// createAndStart stores job id (or finds it, when a request resumes) and
// makes its payment page and workflow.
func (s *Server) createAndStart(ctx context.Context, site, id string, req CreateJobRequest, quote pricing.Quote, reqHash []byte) (int, CreateJobResponse, error) {
	access := token.Access([]byte(s.cfg.AccessTokenSecret), id)
	job, _, err := s.store.CreateJob(ctx, store.NewJob{
		ID:                 id,
		Site:               site,
		ImageURL:           req.ImageURL,
		Resolution:         jobs.Resolution(req.Resolution),
		Email:              req.Email,
		PostID:             req.PostID,
		AttachmentID:       req.AttachmentID,
		ImageWidth:         req.ImageWidth,
		ImageHeight:        req.ImageHeight,
		OutputWidth:        quote.OutputWidth,
		OutputHeight:       quote.OutputHeight,
		AccessTokenHash:    token.Hash(access),
		RequestHash:        reqHash,
		CallbackSecret:     token.Alnum(43),
		Currency:           s.cfg.Currency,
		PriceCents:         quote.PriceCents,
		MarkupPercent:      quote.MarkupPercent,
		EstimatedCredits:   quote.Credits,
		EstimatedCostCents: quote.CostCents,
		CheckoutExpiresAt:  s.now().Add(min(max(s.cfg.PaymentTimeout, checkoutFloor), checkoutCeil)).Truncate(time.Second),
	})
	if err != nil {
		return 0, CreateJobResponse{}, err
	}
	checkout, err := s.ensureWorkflow(ctx, job, access)
	if err != nil {
		return 0, CreateJobResponse{}, err
	}
	return http.StatusCreated, CreateJobResponse{
		ID:                job.ID,
		Status:            job.Status,
		AccessToken:       access,
		CheckoutURL:       checkout.URL,
		CheckoutExpiresAt: checkout.ExpiresAt.UTC(),
		Price:             priceView(job),
		CreatedAt:         job.CreatedAt.UTC(),
	}, nil
}

// checkoutPage is the job's Checkout Session with the customer's payment
// page, which the site gets and Temporal never sees.
type checkoutPage struct {
	jobs.Checkout
	URL string
}

// ensureWorkflow makes the job's Checkout Session and starts the job's
// workflow with it: the request waits for Stripe, the insert and the start,
// nothing else. Each step is idempotent (Stripe's key is derived from the
// job, the workflow ID is the job's), so a retry with the same
// Idempotency-Key resumes where a failed attempt stopped. The workflow is
// started without customer data: no email, no link with the access token,
// no Checkout URL, and no search attribute holding any of them.
func (s *Server) ensureWorkflow(ctx context.Context, job store.Job, access string) (checkoutPage, error) {
	co, err := s.ensureCheckout(ctx, job, access)
	if err != nil || job.Status.Final() {
		return co, err
	}
	in := s.workflowInput(job)
	in.Checkout = co.Checkout
	_, err = s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       jobs.WorkflowID(job.ID),
		TaskQueue:                jobs.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			jobs.AttrJobStatus.ValueSet(string(jobs.StatusAwaitingPayment)),
			jobs.AttrPaymentStatus.ValueSet(string(jobs.PaymentPending)),
		),
		StaticSummary: fmt.Sprintf("%s upscale of %dx%d image", job.Resolution, job.ImageWidth, job.ImageHeight),
	}, jobs.WorkflowName, in)
	var ended *serviceerror.WorkflowExecutionAlreadyStarted // its run has closed already
	if err != nil && !errors.As(err, &ended) {
		return co, fmt.Errorf("start job workflow: %w", err)
	}
	return co, nil
}

// ensureCheckout returns the job's recorded session, or makes and records
// it. Stripe sends the customer back to their page, access token included.
func (s *Server) ensureCheckout(ctx context.Context, job store.Job, access string) (checkoutPage, error) {
	if job.CheckoutURL != nil {
		return checkoutPage{jobs.Checkout{SessionID: deref(job.CheckoutSessionID), ExpiresAt: *job.CheckoutExpiresAt}, *job.CheckoutURL}, nil
	}
	if job.Status.Final() { // it ended before a session existed
		return checkoutPage{}, fail(http.StatusBadGateway, "payment_provider_error", "the payment page could not be created")
	}
	page := s.cfg.PublicBaseURL + "/jobs/" + job.ID + "?token=" + access
	expires := *job.CheckoutExpiresAt
	name, description := jobs.CheckoutText(job.Resolution, job.ImageWidth, job.ImageHeight)
	sess, err := s.payments.CreateCheckout(ctx, payments.CheckoutParams{
		JobID: job.ID, AmountCents: job.PriceCents, Currency: job.Currency,
		ProductName: name, Description: description, CustomerEmail: deref(job.Email),
		SuccessURL: page + "&checkout=success", CancelURL: page + "&checkout=cancelled", ExpiresAt: expires,
	})
	switch {
	case err != nil && payments.Retryable(err):
		s.log.WarnContext(ctx, "creating the Checkout Session failed for now", "job_id", job.ID, "error", err)
		return checkoutPage{}, fail(http.StatusServiceUnavailable, "checkout_pending",
			"the payment page is not ready yet; retry with the same Idempotency-Key")
	case err != nil: // Stripe refused it: the job cannot be paid for
		s.log.ErrorContext(ctx, "Stripe refused the Checkout Session", "job_id", job.ID, "error", err)
		if err := s.store.MarkFailed(ctx, job.ID, jobs.ReasonCheckoutFailed, err.Error()); err != nil {
			return checkoutPage{}, err
		}
		return checkoutPage{}, fail(http.StatusBadGateway, "payment_provider_error", "the payment page could not be created")
	}
	if err := s.store.SetCheckout(ctx, job.ID, sess.ID, sess.URL, expires); err != nil {
		return checkoutPage{}, err
	}
	return checkoutPage{jobs.Checkout{SessionID: sess.ID, ExpiresAt: expires}, sess.URL}, nil
}

// workflowInput is what the job's workflow starts with: the order and its
// terms, nothing about the customer.
func (s *Server) workflowInput(job store.Job) jobs.WorkflowInput {
	return jobs.WorkflowInput{
		JobID:             job.ID,
		ImageURL:          job.ImageURL,
		Resolution:        job.Resolution,
		ImageWidth:        job.ImageWidth,
		ImageHeight:       job.ImageHeight,
		PriceCents:        job.PriceCents,
		Currency:          job.Currency,
		CheckoutExpiresAt: *job.CheckoutExpiresAt,
		Timeouts: jobs.Timeouts{
			Payment:         s.cfg.PaymentTimeout,
			DownloadTTL:     s.cfg.DownloadTTL,
			Processing:      s.cfg.ProcessingTimeout,
			PollInterval:    s.cfg.UpsamplerPollInterval,
			LostSubmission:  s.cfg.UpsamplerLostAnswerWait,
			RetryWindow:     s.cfg.RetryWindow,
			RefundRetry:     s.cfg.RefundRetryInterval,
			RefundAttention: s.cfg.RefundAttentionAfter,
			AsyncPayment:    s.cfg.AsyncPaymentTimeout,
			ReminderLead:    s.cfg.ExpiryReminderLead,
		},
		Limits: jobs.Limits{MaxRetries: s.cfg.AdminRetryLimit, MaxResends: s.cfg.DownloadResendLimit},
	}
}

func (s *Server) validateJob(r *CreateJobRequest) (pricing.Quote, error) {
	r.ImageURL = strings.TrimSpace(r.ImageURL)
	r.Email = strings.TrimSpace(r.Email)
	if r.ImageURL == "" {
		return pricing.Quote{}, invalidField("image_url", "required", "image_url is required")
	}
	if _, err := s.sources.Check(r.ImageURL); err != nil {
		return pricing.Quote{}, invalidField("image_url", "image_url_not_allowed", err.Error())
	}
	res := jobs.Resolution(r.Resolution)
	if res.Factor() == 0 {
		return pricing.Quote{}, invalidField("resolution", "invalid_resolution", `resolution must be "4x" or "8x"`)
	}
	if r.Email != "" {
		if a, err := mail.ParseAddress(r.Email); err != nil || a.Address != r.Email || len(r.Email) > 254 {
			return pricing.Quote{}, invalidField("email", "invalid_email", "email is not a valid address")
		}
	}
	if r.PostID < 0 {
		return pricing.Quote{}, invalidField("post_id", "invalid_post_id", "post_id must not be negative")
	}
	if r.AttachmentID != nil && *r.AttachmentID < 0 {
		return pricing.Quote{}, invalidField("attachment_id", "invalid_attachment_id", "attachment_id must not be negative")
	}
	for _, side := range []struct {
		field string
		v     int
	}{{"image_width", r.ImageWidth}, {"image_height", r.ImageHeight}} {
		switch {
		case side.v < minImageSide:
			return pricing.Quote{}, invalidField(side.field, "image_too_small",
				fmt.Sprintf("%s must be at least %d pixels", side.field, minImageSide))
		case side.v > maxImageSide:
			return pricing.Quote{}, invalidField(side.field, "image_too_large",
				fmt.Sprintf("%s must be at most %d pixels", side.field, maxImageSide))
		}
	}
	q, err := pricing.Compute(r.ImageWidth, r.ImageHeight, res, s.cfg.MarkupPercent)
	if err != nil {
		return q, invalidField("resolution", "invalid_resolution", err.Error())
	}
	if int64(q.OutputWidth)*int64(q.OutputHeight) > s.cfg.MaxOutputMegapixels*1_000_000 {
		return q, invalidField("resolution", "output_too_large", fmt.Sprintf(
			"the %s output would be %dx%d, over the %d megapixel limit", res, q.OutputWidth, q.OutputHeight, s.cfg.MaxOutputMegapixels))
	}
	return q, nil
}

func validateIdempotencyKey(k string) error {
	if k == "" {
		return nil
	}
	if len(k) > 255 {
		return fail(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be at most 255 characters")
	}
	for _, r := range k {
		if r < 0x21 || r > 0x7e {
			return fail(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key must be printable ASCII without spaces")
		}
	}
	return nil
}

// decodeStrict reads one JSON object, rejecting unknown fields and trailing data.
func decodeStrict[T any](body io.Reader) (T, error) {
	var v T
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return v, he // body too large
		}
		return v, fail(http.StatusBadRequest, "invalid_json", "request body is not valid JSON: "+jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return v, fail(http.StatusBadRequest, "invalid_json", "request body has data after the JSON object")
	}
	return v, nil
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
	}
	return err.Error()
}

// getJob answers the job's customer (bearing its access token) or its
// site (bearing a key of the site that created it), each with its view.
func (s *Server) getJob(c echo.Context) error {
	if cred, ok := bearer(c); ok && sitekey.Looks(cred) {
		key, err := s.siteKey(c)
		if err != nil {
			return err
		}
		job, err := s.jobIf(c, func(j store.Job) bool { return j.Site != nil && *j.Site == key.Site })
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, s.siteView(job))
	}
	job, err := s.authorizedJob(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.customerView(job))
}

// authorizedJob returns the job if the bearer holds its access token.
func (s *Server) authorizedJob(c echo.Context) (store.Job, error) {
	access, ok := bearer(c)
	if !ok {
		return store.Job{}, errNotFound
	}
	return s.jobIf(c, func(j store.Job) bool { return token.Matches(access, j.AccessTokenHash) })
}

// jobIf returns the job the route's :id names if may allows its caller to
// see it. A malformed id, an unknown job and a refusal are the same plain
// errNotFound, so that a job's existence does not leak; a failed read is
// an error of its own (a 503 when the database is away).
func (s *Server) jobIf(c echo.Context, may func(store.Job) bool) (store.Job, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return store.Job{}, errNotFound
	}
	job, err := s.store.Get(c.Request().Context(), id.String())
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && !may(job):
		return store.Job{}, errNotFound
	case err != nil:
		return store.Job{}, fmt.Errorf("read job %s: %w", id, err)
	}
	return job, nil
}

func bearer(c echo.Context) (string, bool) {
	return sitekey.Bearer(c.Request().Header.Get(echo.HeaderAuthorization))
}

func (s *Server) download(c echo.Context) error {
	tok := c.Param("token")
	if !token.IsAlnum(tok, 64) {
		return errNotFound
	}
	job, err := s.store.GetByDownloadToken(c.Request().Context(), tok)
	if errors.Is(err, store.ErrNotFound) {
		return errNotFound
	}
	if err != nil {
		return err
	}
	if job.DownloadExpiredAt != nil || job.DownloadExpiresAt == nil || !s.now().Before(*job.DownloadExpiresAt) {
		return fail(http.StatusGone, "download_expired", "this download link has expired")
	}
	if job.Status != jobs.StatusCompleted || job.ResultKey == nil {
		return errNotFound
	}
	f, err := s.files.Open(c.Request().Context(), *job.ResultKey)
	if err != nil {
		return fmt.Errorf("open result of job %s: %w", job.ID, err)
	}
	defer f.Close()
	name := fmt.Sprintf("hires-%s-%s%s", job.ID[:8], job.Resolution, extOf(*job.ResultKey))
	h := c.Response().Header()
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", name))
	h.Set(echo.HeaderContentType, deref(job.ResultContentType))
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if job.ResultSHA256 != nil {
		h.Set("ETag", `"`+*job.ResultSHA256+`"`)
	}
	if c.Request().Method == http.MethodGet {
		if err := s.store.MarkDownloaded(c.Request().Context(), job.ID); err != nil {
			s.log.WarnContext(c.Request().Context(), "recording the download failed", "job_id", job.ID, "error", err)
		}
	}
	if r := c.Request().Header.Get("Range"); r != "" {
		c.Request().Header.Set("Range", satisfiableRanges(r, f.Size()))
	}
	// ServeContent answers Range and conditional requests.
	http.ServeContent(c.Response(), c.Request(), name, f.ModTime(), f)
	return nil
}

// satisfiableRanges works around http.ServeContent answering a zero-length
// suffix range ("bytes=-0", golang/go#81262) with 206 and the impossible
// Content-Range "bytes <size>-<size-1>/<size>". Such a range selects
// nothing (RFC 9110 §14.1.1), so it is dropped; when no range is left, the
// header asks for bytes past the end instead, which ServeContent answers
// 416 with "Content-Range: bytes */<size>". Other headers pass unchanged.
func satisfiableRanges(header string, size int64) string {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return header
	}
	var kept []string
	dropped, left := false, 0
	for _, r := range strings.Split(spec, ",") {
		// Parsed as ServeContent does: trimmed, start and end cut at '-'.
		start, end, _ := strings.Cut(textproto.TrimString(r), "-")
		if n, err := strconv.ParseInt(textproto.TrimString(end), 10, 64); err == nil && n == 0 && textproto.TrimString(start) == "" {
			dropped = true
			continue
		}
		if textproto.TrimString(r) != "" {
			left++
		}
		kept = append(kept, r)
	}
	switch {
	case !dropped:
		return header
	case left == 0:
		return "bytes=" + strconv.FormatInt(size, 10) + "-"
	}
	return "bytes=" + strings.Join(kept, ",")
}

func extOf(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i:]
	}
	return ""
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
