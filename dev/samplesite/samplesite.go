// Package samplesite stands in, locally, for the selling site's image host:
// it serves generated PNG photos-to-be at any size, so that a local job has
// a real source image for Upsampler to fetch.
package samplesite

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"
	"time"
)

// Limits on generated images.
const (
	MinSide = 16
	MaxSide = 4000
)

// Handler serves GET /images/{w}x{h}.png.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /images/{size}", func(w http.ResponseWriter, r *http.Request) {
		width, height, err := parseSize(r.PathValue("size"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, Image(width, height)); err != nil {
			http.Error(w, "encode failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(buf.Bytes()))
	})
	return mux
}

func parseSize(name string) (int, int, error) {
	var w, h int
	if n, err := fmt.Sscanf(name, "%dx%d.png", &w, &h); err != nil || n != 2 ||
		name != strconv.Itoa(w)+"x"+strconv.Itoa(h)+".png" {
		return 0, 0, fmt.Errorf("want /images/{width}x{height}.png")
	}
	if w < MinSide || h < MinSide || w > MaxSide || h > MaxSide {
		return 0, 0, fmt.Errorf("sides must be %d..%d pixels", MinSide, MaxSide)
	}
	return w, h, nil
}

// Image draws a gradient with a grid, so that scaling is visible.
func Image(w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{R: uint8(255 * x / w), G: uint8(255 * y / h), B: 160, A: 255}
			if x%32 == 0 || y%32 == 0 {
				c = color.NRGBA{R: 255, G: 255, B: 255, A: 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}
