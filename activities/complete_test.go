package activities

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestImageComplete(t *testing.T) {
	riff := func(declared uint32, total int) []byte {
		b := make([]byte, total)
		copy(b, "RIFF")
		binary.LittleEndian.PutUint32(b[4:], declared)
		copy(b[8:], "WEBP")
		return b
	}
	tests := []struct {
		name, typ string
		data      []byte
		ok        bool
	}{
		{"PNG with IEND", "image/png", append([]byte("....."), pngEnd...), true},
		{"PNG without IEND", "image/png", []byte("................."), false},
		{"JPEG with EOI", "image/jpeg", []byte{0xFF, 0xD8, 0x00, 0xFF, 0xD9}, true},
		{"JPEG without EOI", "image/jpeg", []byte{0xFF, 0xD8, 0x00, 0x00}, false},
		{"WebP whole", "image/webp", riff(92, 100), true},
		{"WebP cut", "image/webp", riff(192, 100), false},
		{"too short to check", "image/png", []byte{1}, false},
	}
	for _, tt := range tests {
		err := imageComplete(bytes.NewReader(tt.data), tt.typ, int64(len(tt.data)))
		if (err == nil) != tt.ok {
			t.Errorf("%s: got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
