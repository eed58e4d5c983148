// Package pricing computes a job's price from its output size, in integer
// cents, following the original plugin's formula without its rounding bug.
package pricing

import (
	"fmt"

	"hires/internal/jobs"
)

const (
	// pixelsPerCredit: Upsampler's precise upscale costs 0.25 credits per
	// output megapixel, i.e. one credit per 4,000,000 output pixels, rounded up.
	pixelsPerCredit = 4_000_000
	// CentsPerCredit is what one Upsampler credit costs us ($0.04).
	CentsPerCredit = 4
	// MinimumPriceCents is Stripe's minimum charge for USD ($0.50).
	MinimumPriceCents = 50
)

// Quote is the frozen price of one job.
type Quote struct {
	Factor        int   `json:"factor"`
	OutputWidth   int   `json:"output_width"`
	OutputHeight  int   `json:"output_height"`
	Credits       int64 `json:"credits"`
	CostCents     int64 `json:"cost_cents"`
	MarkupPercent int   `json:"markup_percent"`
	PriceCents    int64 `json:"price_cents"`
}

// Compute prices an image of width x height upscaled at resolution r.
//
// credits = ceil(outW*outH / 4e6), at least 1; cost = credits x 4 cents;
// price = cost x (100+markup)/100 rounded half up to the cent, at least 50 cents.
// Integer arithmetic throughout: the original truncated a float and
// undercharged by a cent on prices such as $2.28.
func Compute(width, height int, r jobs.Resolution, markupPercent int) (Quote, error) {
	f := r.Factor()
	if f == 0 {
		return Quote{}, fmt.Errorf("pricing: unknown resolution %q", r)
	}
	if width <= 0 || height <= 0 {
		return Quote{}, fmt.Errorf("pricing: image size %dx%d must be positive", width, height)
	}
	if markupPercent < 0 {
		return Quote{}, fmt.Errorf("pricing: markup %d%% must not be negative", markupPercent)
	}
	outW, outH := int64(width)*int64(f), int64(height)*int64(f)
	credits := max((outW*outH+pixelsPerCredit-1)/pixelsPerCredit, 1)
	cost := credits * CentsPerCredit
	price := max((cost*int64(100+markupPercent)+50)/100, MinimumPriceCents)
	return Quote{
		Factor:        f,
		OutputWidth:   int(outW),
		OutputHeight:  int(outH),
		Credits:       credits,
		CostCents:     cost,
		MarkupPercent: markupPercent,
		PriceCents:    price,
	}, nil
}
