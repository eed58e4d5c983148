package sitekey

import (
	"strings"
	"testing"
)

func TestNewIsValidAndUnique(t *testing.T) {
	a, b := New(), New()
	if !Valid(a) || !Valid(b) || a == b || len(a) != Len {
		t.Fatalf("New gave %q and %q", a, b)
	}
	if Shown(a) == "" || strings.Contains(Shown(a), a[len(Prefix)+6:]) {
		t.Fatalf("Shown(%q) = %q", a, Shown(a))
	}
}

func TestValid(t *testing.T) {
	good := Prefix + strings.Repeat("aB3", 14) + "x"
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{good, true},
		{"", false},
		{Prefix, false},
		{good[:len(good)-1], false},
		{good + "x", false},
		{"hires_pk_" + good[len(Prefix):], false},
		{strings.Replace(good, "a", "-", 1), false},
		{strings.Replace(good, "a", "é", 1), false},
		{" " + good, false},
	} {
		if got := Valid(tt.in); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBearer(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER   abc", "abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"Bearer abc def", "", false},
		{"Bearer abc ", "", false},
		{"Bearerabc", "", false},
		{"", "", false},
		{"Bearer a\tb", "", false},
	} {
		got, ok := Bearer(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Bearer(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestHashDiffersFromPlainSHA(t *testing.T) {
	k := New()
	if string(Hash(k)) == string(Hash(New())) {
		t.Fatal("two keys hash alike")
	}
}

// FuzzAuthorization checks that no header value crashes the parsers, that a
// credential never carries whitespace, and that only well-formed keys pass.
func FuzzAuthorization(f *testing.F) {
	for _, s := range []string{"Bearer " + New(), "bearer  x", "Basic dXNlcg==", "Bearer", "", "Bearer hires_sk_\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		cred, ok := Bearer(header)
		if ok && (cred == "" || strings.ContainsAny(cred, " \t\r\n")) {
			t.Fatalf("Bearer(%q) = %q", header, cred)
		}
		if Valid(cred) {
			if len(cred) != Len || !strings.HasPrefix(cred, Prefix) {
				t.Fatalf("Valid accepted %q", cred)
			}
			for _, c := range cred[len(Prefix):] {
				if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
					t.Fatalf("Valid accepted %q", cred)
				}
			}
		}
		_ = Shown(cred)
	})
}
