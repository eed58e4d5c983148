package token

import "testing"

func TestAlnum(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for i := 0; i < 200; i++ {
		s := Alnum(64)
		if !IsAlnum(s, 64) {
			t.Fatalf("not 64 alphanumerics: %q", s)
		}
		if seen[s] {
			t.Fatal("repeated token")
		}
		seen[s] = true
		for _, c := range s {
			counts[c]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("only %d distinct characters in 12800 draws", len(counts))
	}
}

func TestIsAlnum(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want bool
	}{
		{"abc123", 6, true},
		{"abc123", 5, false},
		{"abc-12", 6, false},
		{"ábc12", 6, false},
		{"", 0, true},
	}
	for _, tt := range tests {
		if got := IsAlnum(tt.s, tt.n); got != tt.want {
			t.Errorf("IsAlnum(%q, %d) = %v", tt.s, tt.n, got)
		}
	}
}

func TestHashAndDerive(t *testing.T) {
	if !Matches("secret", Hash("secret")) || Matches("secret2", Hash("secret")) {
		t.Fatal("Matches is wrong")
	}
	a, b := Derive("key-1", "job-1"), Derive("key-1", "job-1")
	if a != b || a == Derive("key-2", "job-1") || a == Derive("key-1", "job-2") {
		t.Fatal("Derive must be stable per key and subject and differ otherwise")
	}
}
