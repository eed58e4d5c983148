package activities

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // decoders for result validation
	_ "image/png"
	"io"
	"net/http"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	_ "golang.org/x/image/webp"

	"hires/internal/jobs"
	"hires/internal/metrics"
	"hires/internal/store"
	"hires/internal/token"
	"hires/internal/urlguard"
)

// StoreResultInput is the output to fetch and keep, and the download link
// the job then gets.
type StoreResultInput struct {
	JobID          string
	ResultURL      string
	ExpectedWidth  int
	ExpectedHeight int
	UpsamplerJobID string
	CreditCost     float64
	// ExpiresAt is the link's expiry; RemindAt when the customer is
	// reminded of it if they have not downloaded the image (zero: never).
	ExpiresAt time.Time
	RemindAt  time.Time
}

// StoredResult describes the kept file.
type StoredResult struct {
	Key         string
	ContentType string
	Bytes       int64
	SHA256      string
	Width       int
	Height      int
}

var extensions = map[string]string{"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}

// StoreResult keeps Upsampler's output and completes the job: the job
// record gets the file and a download token (which never enters workflow
// history), and the link goes out to the customer. A retry once the job is
// completed changes nothing.
func (a *Activities) StoreResult(ctx context.Context, in StoreResultInput) error {
	job, err := a.Store.Get(ctx, in.JobID)
	if err != nil {
		return storeErr(err)
	}
	if job.Status == jobs.StatusCompleted {
		return nil
	}
	res, err := a.fetchResult(ctx, in)
	if err != nil {
		return err
	}
	err = storeErr(a.Store.MarkCompleted(ctx, store.Completion{
		JobID:             in.JobID,
		UpsamplerJobID:    in.UpsamplerJobID,
		UpsamplerCredits:  in.CreditCost,
		ResultKey:         res.Key,
		ContentType:       res.ContentType,
		Bytes:             res.Bytes,
		SHA256:            res.SHA256,
		Width:             res.Width,
		Height:            res.Height,
		DownloadToken:     token.Alnum(token.DownloadLength),
		DownloadExpiresAt: in.ExpiresAt,
		RemindAt:          in.RemindAt,
	}))
	if err == nil {
		a.Metrics.JobFinished(metrics.JobCompleted)
		a.Metrics.UpsamplerCredits(in.CreditCost)
	}
	return err
}

// fetchResult downloads Upsampler's output at once (its URL expires after
// a few hours), from allowed hosts only, capped in size, and keeps it only
// if it really is a PNG, JPEG or WebP image of the expected size.
func (a *Activities) fetchResult(ctx context.Context, in StoreResultInput) (StoredResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.ResultURL, nil)
	if err != nil {
		return StoredResult{}, temporal.NewNonRetryableApplicationError("bad result URL", ErrTypeResultInvalid, err)
	}
	resp, err := a.ResultClient.Do(req)
	if errors.Is(err, urlguard.ErrNotAllowed) {
		return StoredResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeResultInvalid, err)
	}
	if err != nil {
		return StoredResult{}, fmt.Errorf("fetch result: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return StoredResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("result URL answered %d", resp.StatusCode), ErrTypeResultGone, nil)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return StoredResult{}, fmt.Errorf("fetch result: HTTP %d", resp.StatusCode)
	default:
		return StoredResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("result URL answered %d", resp.StatusCode), ErrTypeResultInvalid, nil)
	}
	if resp.ContentLength > a.MaxResultBytes {
		return StoredResult{}, invalid("result is %d bytes, over the %d byte limit", resp.ContentLength, a.MaxResultBytes)
	}

	body := bufio.NewReaderSize(&heartbeatReader{ctx: ctx, r: resp.Body}, 4096)
	head, _ := body.Peek(512)
	contentType := http.DetectContentType(head)
	ext, ok := extensions[contentType]
	if !ok {
		return StoredResult{}, invalid("result is %s, not a PNG, JPEG or WebP image", contentType)
	}
	key := fmt.Sprintf("results/%s.%s", in.JobID, ext)
	limited := &io.LimitedReader{R: body, N: a.MaxResultBytes + 1}
	w, err := a.Files.Put(ctx, key, limited)
	if err != nil {
		return StoredResult{}, fmt.Errorf("store result: %w", err)
	}
	if w.Bytes > a.MaxResultBytes {
		a.Files.Delete(ctx, key) //nolint:errcheck // best effort; the job fails either way
		return StoredResult{}, invalid("result is over the %d byte limit", a.MaxResultBytes)
	}
	width, height, err := a.check(ctx, key, contentType)
	if err != nil {
		a.Files.Delete(ctx, key) //nolint:errcheck
		return StoredResult{}, invalid("result does not decode as %s: %v", contentType, err)
	}
	if !near(width, in.ExpectedWidth) || !near(height, in.ExpectedHeight) {
		a.Files.Delete(ctx, key) //nolint:errcheck
		return StoredResult{}, invalid("result is %dx%d, expected %dx%d", width, height, in.ExpectedWidth, in.ExpectedHeight)
	}
	return StoredResult{Key: key, ContentType: contentType, Bytes: w.Bytes, SHA256: w.SHA256, Width: width, Height: height}, nil
}

// check reads the stored file's dimensions and makes sure it is whole: a
// cut-off download has a valid header but no end. Decoding every pixel of an
// 8x output would take gigabytes, so the format's end marker is checked instead.
func (a *Activities) check(ctx context.Context, key, contentType string) (int, int, error) {
	f, err := a.Files.Open(ctx, key)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, 0, err
	}
	if err := imageComplete(f, contentType, f.Size()); err != nil {
		return 0, 0, err
	}
	return cfg.Width, cfg.Height, nil
}

var pngEnd = []byte{0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82}

// imageComplete checks the end of an image file: PNG's IEND chunk, JPEG's
// end-of-image marker, or WebP's RIFF size matching the file.
func imageComplete(f io.ReaderAt, contentType string, size int64) error {
	switch contentType {
	case "image/png":
		tail := make([]byte, len(pngEnd))
		if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil || !bytes.Equal(tail, pngEnd) {
			return errors.New("PNG has no IEND chunk: truncated")
		}
	case "image/jpeg":
		tail := make([]byte, 2)
		if _, err := f.ReadAt(tail, size-2); err != nil || tail[0] != 0xFF || tail[1] != 0xD9 {
			return errors.New("JPEG has no end-of-image marker: truncated")
		}
	case "image/webp":
		head := make([]byte, 8)
		if _, err := f.ReadAt(head, 0); err != nil || int64(binary.LittleEndian.Uint32(head[4:]))+8 != size {
			return errors.New("WebP size does not match its RIFF header: truncated")
		}
	}
	return nil
}

// near allows 1% (and at least 2 px) of rounding by the upscaler.
func near(got, want int) bool {
	d := got - want
	if d < 0 {
		d = -d
	}
	return d <= max(2, want/100)
}

func invalid(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrTypeResultInvalid, nil)
}

// heartbeatReader reports progress while a large result streams in, so a
// stuck download is noticed by its heartbeat timeout rather than much later.
type heartbeatReader struct {
	ctx  context.Context
	r    io.Reader
	read int64
	last time.Time
}

func (h *heartbeatReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.read += int64(n)
	if time.Since(h.last) > time.Second && activity.IsActivity(h.ctx) {
		activity.RecordHeartbeat(h.ctx, h.read)
		h.last = time.Now()
	}
	return n, err
}
