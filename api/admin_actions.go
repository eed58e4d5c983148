package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"hires/internal/jobs"
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
