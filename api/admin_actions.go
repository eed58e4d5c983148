package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"hires/internal/jobs"
	"hires/internal/store"
)

// adminDownloadAction runs one of the download updates on the job's
// workflow: resend (extend the link and email it again) or new-token.
// A validator rejection (the job is not delivered, or its file is gone)
// answers 409.
func (s *Server) adminDownloadAction(update string) echo.HandlerFunc {
	return func(c echo.Context) error {
		j, err := s.adminJob(c)
		if err != nil {
			return err
		}
		var req jobs.DownloadRequest
		if c.Request().ContentLength != 0 {
			if req, err = decodeStrict[jobs.DownloadRequest](c.Request().Body); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), 30*time.Second)
		defer cancel()
		h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID:   jobs.WorkflowID(j.ID),
			UpdateName:   update,
			Args:         []any{req},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		var info jobs.DownloadInfo
		if err == nil {
			err = h.Get(ctx, &info)
		}
		var notFound *serviceerror.NotFound
		switch {
		case err == nil:
			return c.JSON(http.StatusOK, info)
		case errors.As(err, &notFound):
			return fail(http.StatusConflict, "job_closed", "the job's workflow has ended: its download can no longer change")
		case ctx.Err() != nil:
			return fail(http.StatusServiceUnavailable, "timeout", "the job did not answer in time, retry")
		}
		return fail(http.StatusConflict, "not_downloadable", err.Error())
	}
}

// RefundSettledRequest is the body of POST /v1/admin/jobs/{id}/refund-settled.
type RefundSettledRequest struct {
	// By names the admin, for the audit trail (optional).
	By string `json:"by,omitempty"`
	// Note says how the customer was paid back (required).
	Note string `json:"note"`
}

// adminRefundSettled records an admin's word that a refund Stripe refused
// was settled another way (the customer paid back by bank transfer, say),
// and tells the job's workflow, if it still runs. A refund made in the
// Stripe Dashboard needs no call: Stripe's charge.refunded settles it.
func (s *Server) adminRefundSettled(c echo.Context) error {
	j, err := s.adminJob(c)
	if err != nil {
		return err
	}
	req, err := decodeStrict[RefundSettledRequest](c.Request().Body)
	if err != nil {
		return err
	}
	req.By, req.Note = strings.TrimSpace(req.By), strings.TrimSpace(req.Note)
	switch {
	case req.Note == "":
		return invalidField("note", "required", "say how the refund was settled")
	case len(req.Note) > 1000:
		return invalidField("note", "too_long", "note is longer than 1000 bytes")
	case len(req.By) > 200:
		return invalidField("by", "too_long", "by is longer than 200 bytes")
	}
	ctx := c.Request().Context()
	err = s.store.MarkRefundSettled(ctx, j.ID, req.By, req.Note)
	if errors.Is(err, store.ErrInvalidTransition) {
		return fail(http.StatusConflict, "no_refund_owed",
			"only a refund Stripe refused (payment status refund_failed or refund_needs_attention) can be marked settled; this job's payment is "+string(j.PaymentStatus))
	}
	if err != nil {
		return err
	}
	err = s.temporal.SignalWorkflow(ctx, jobs.WorkflowID(j.ID), "", jobs.SignalRefundSettled, nil)
	var notFound *serviceerror.NotFound
	if err != nil && !errors.As(err, &notFound) {
		// Recorded; only the workflow's search attribute lags until it ends.
		s.log.WarnContext(ctx, "Refund settled, but the job's workflow was not told", "job_id", j.ID, "error", err)
	}
	updated, err := s.adminJob(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, updated)
}
