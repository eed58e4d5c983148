package pricing

import (
	"testing"

	"hires/internal/jobs"
)

func TestCompute(t *testing.T) {
	tests := []struct {
		name              string
		w, h              int
		res               jobs.Resolution
		markup            int
		credits, cost     int64
		price             int64
		outWidth, outHigh int
	}{
		{"seed example, markup 500", 2000, 2000, jobs.Resolution4x, 500, 16, 64, 384, 8000, 8000},
		{"markup 200", 2000, 2000, jobs.Resolution4x, 200, 16, 64, 192, 8000, 8000},
		{"1080p 4x", 1920, 1080, jobs.Resolution4x, 200, 9, 36, 108, 7680, 4320},
		{"1080p 8x", 1920, 1080, jobs.Resolution8x, 200, 34, 136, 408, 15360, 8640},
		{"raised to Stripe minimum", 1000, 1000, jobs.Resolution4x, 200, 4, 16, 50, 4000, 4000},
		{"tiny image still costs one credit", 100, 100, jobs.Resolution4x, 200, 1, 4, 50, 400, 400},
		// The original charged 227 cents here (float truncation).
		{"no off-by-one cent", 2600, 1800, jobs.Resolution4x, 200, 19, 76, 228, 10400, 7200},
		{"exactly one credit boundary", 500, 500, jobs.Resolution8x, 200, 4, 16, 50, 4000, 4000},
		{"rounds half up", 1000, 1000, jobs.Resolution8x, 150, 16, 64, 160, 8000, 8000},
		{"zero markup", 2000, 2000, jobs.Resolution4x, 0, 16, 64, 64, 8000, 8000},
		{"odd markup rounds to nearest cent", 2000, 2000, jobs.Resolution4x, 33, 16, 64, 85, 8000, 8000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Compute(tt.w, tt.h, tt.res, tt.markup)
			if err != nil {
				t.Fatal(err)
			}
			if q.Credits != tt.credits || q.CostCents != tt.cost || q.PriceCents != tt.price {
				t.Errorf("got credits=%d cost=%d price=%d, want %d %d %d", q.Credits, q.CostCents, q.PriceCents, tt.credits, tt.cost, tt.price)
			}
			if q.OutputWidth != tt.outWidth || q.OutputHeight != tt.outHigh {
				t.Errorf("output %dx%d, want %dx%d", q.OutputWidth, q.OutputHeight, tt.outWidth, tt.outHigh)
			}
		})
	}
}

func TestComputeRejects(t *testing.T) {
	tests := []struct {
		name   string
		w, h   int
		res    jobs.Resolution
		markup int
	}{
		{"unknown resolution", 100, 100, "2x", 200},
		{"zero width", 0, 100, jobs.Resolution4x, 200},
		{"negative markup", 100, 100, jobs.Resolution4x, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Compute(tt.w, tt.h, tt.res, tt.markup); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// The minimum never hides an undercharge: the price is never below cost x (1+markup).
func TestComputeNeverUndercharges(t *testing.T) {
	for _, markup := range []int{0, 50, 200, 500, 1200} {
		for side := 100; side <= 4000; side += 37 {
			q, err := Compute(side, side+13, jobs.Resolution4x, markup)
			if err != nil {
				t.Fatal(err)
			}
			if q.PriceCents*100 < q.CostCents*int64(100+markup)-50 {
				t.Fatalf("markup %d side %d: price %d below cost %d x markup", markup, side, q.PriceCents, q.CostCents)
			}
		}
	}
}
