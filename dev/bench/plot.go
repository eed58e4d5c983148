package bench

import (
	"fmt"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one line of a growth plot.
type series struct {
	name string
	y    func(Checkpoint) float64
}

// plotGrowth draws memory and latency against parked jobs (gonum/plot: the
// maintained pure-Go plotting library, PNG without cgo or a browser).
func plotGrowth(dir string, g []Checkpoint) error {
	if len(g) == 0 {
		return nil
	}
	if err := linePlot(filepath.Join(dir, "growth-memory.png"), "Resident memory with parked jobs", "MiB", g, []series{
		{"worker", func(c Checkpoint) float64 { return c.Memory.WorkerRSS }},
		{"API", func(c Checkpoint) float64 { return c.Memory.APIRSS }},
		{"Temporal dev server", func(c Checkpoint) float64 { return c.Memory.TemporalRSS }},
		{"PostgreSQL (PSS)", func(c Checkpoint) float64 { return c.Memory.PostgresTotal }},
	}); err != nil {
		return err
	}
	return linePlot(filepath.Join(dir, "growth-latency.png"), "Latency with parked jobs", "ms", g, []series{
		{"POST /v1/jobs p50", func(c Checkpoint) float64 { return c.Create.P50 }},
		{"POST /v1/jobs p99", func(c Checkpoint) float64 { return c.Create.P99 }},
		{"Stripe webhook p99", func(c Checkpoint) float64 { return c.Webhook.P99 }},
		{"payment to submit p99", func(c Checkpoint) float64 { return c.PaymentToSubmit.P99 }},
	})
}

func linePlot(path, title, unit string, g []Checkpoint, lines []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "jobs parked"
	p.Y.Label.Text = unit
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	var args []any
	for _, l := range lines {
		pts := make(plotter.XYs, len(g))
		for i, c := range g {
			pts[i] = plotter.XY{X: float64(c.Parked), Y: l.y(c)}
		}
		args = append(args, l.name, pts)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	if err := p.Save(7*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}
