package token

import (
	"strings"
	"testing"
)

const alnumChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// isAlnumRef is the reference: exactly n bytes, none outside [0-9A-Za-z].
func isAlnumRef(s string, n int) bool {
	return len(s) == n && strings.Trim(s, alnumChars) == ""
}

// FuzzDownloadToken: the download handler's token check, IsAlnum(s, 64),
// agrees with the reference for any string, as does IsAlnum(s, len(s)); a
// generated token always passes. More seeds are in
// testdata/fuzz/FuzzDownloadToken.
func FuzzDownloadToken(f *testing.F) {
	for _, s := range []string{
		strings.Repeat("a", 64),
		strings.Repeat("Z9", 32),
		strings.Repeat("a", 63),
		strings.Repeat("a", 65),
		strings.Repeat("a", 63) + "-",
		strings.Repeat("a", 62) + "é", // 64 bytes, 63 runes
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsAlnum(s, 64), isAlnumRef(s, 64); got != want {
			t.Fatalf("IsAlnum(%q, 64) = %v, want %v", s, got, want)
		}
		if got, want := IsAlnum(s, len(s)), isAlnumRef(s, len(s)); got != want {
			t.Fatalf("IsAlnum(%q, %d) = %v, want %v", s, len(s), got, want)
		}
		if tok := Alnum(64); !IsAlnum(tok, 64) {
			t.Fatalf("Alnum(64) = %q fails IsAlnum", tok)
		}
	})
}
