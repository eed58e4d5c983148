package samplesite

import (
	"image/png"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestServesImagesOfTheAskedSize(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	tests := []struct {
		path   string
		status int
		w, h   int
	}{
		{"/images/120x90.png", 200, 120, 90},
		{"/images/15x90.png", 404, 0, 0},
		{"/images/5000x90.png", 404, 0, 0},
		{"/images/120x90.png.exe", 404, 0, 0},
		{"/images/abc.png", 404, 0, 0},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.path, resp.StatusCode, tt.status)
		}
		if tt.status == 200 {
			img, err := png.Decode(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
				t.Errorf("%s: got %v", tt.path, b)
			}
		}
		resp.Body.Close()
	}
}
