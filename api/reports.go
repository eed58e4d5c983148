package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"hires/internal/store"
)

// CostReport answers GET /v1/admin/reports/costs.
type CostReport struct {
	From  string          `json:"from"`
	To    string          `json:"to"`
	Days  []store.CostDay `json:"days"`
	Total store.CostDay   `json:"total"`
}

const dateLayout = "2006-01-02"

// costReport sums revenue, Upsampler cost, refunds and margin per UTC day
// and in total, for ?from=YYYY-MM-DD&to=YYYY-MM-DD (both days included;
// default: the last 30 days).
func (s *Server) costReport(c echo.Context) error {
	today := s.now().UTC().Truncate(24 * time.Hour)
	from, to := today.AddDate(0, 0, -29), today
	var err error
	if v := c.QueryParam("from"); v != "" {
		if from, err = time.Parse(dateLayout, v); err != nil {
			return invalidField("from", "invalid_date", "from must be a date like 2026-11-01")
		}
	}
	if v := c.QueryParam("to"); v != "" {
		if to, err = time.Parse(dateLayout, v); err != nil {
			return invalidField("to", "invalid_date", "to must be a date like 2026-11-30")
		}
	}
	switch {
	case to.Before(from):
		return invalidField("to", "invalid_range", "to must not be before from")
	case to.Sub(from) > 366*24*time.Hour:
		return invalidField("to", "invalid_range", "the report covers at most 366 days")
	}
	days, err := s.store.CostReport(c.Request().Context(), from, to.AddDate(0, 0, 1))
	if err != nil {
		return err
	}
	out := CostReport{From: from.Format(dateLayout), To: to.Format(dateLayout), Days: days}
	if out.Days == nil {
		out.Days = []store.CostDay{}
	}
	for _, d := range days {
		out.Total.PaidJobs += d.PaidJobs
		out.Total.RevenueCents += d.RevenueCents
		out.Total.UpsamplerCost += d.UpsamplerCost
		out.Total.RefundsCents += d.RefundsCents
		out.Total.MarginCents += d.MarginCents
	}
	return c.JSON(http.StatusOK, out)
}
