package events

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSigningSecretsOverlap(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	tests := []struct {
		name     string
		previous string
		expires  *time.Time
		want     []string
	}{
		{"never rotated", "", nil, []string{"cur"}},
		{"overlap running", "prev", at(time.Hour), []string{"cur", "prev"}},
		{"last instant of the overlap", "prev", at(time.Nanosecond), []string{"cur", "prev"}},
		{"overlap ends now", "prev", at(0), []string{"cur"}},
		{"overlap over", "prev", at(-time.Hour), []string{"cur"}},
		{"no overlap (expiry unset)", "prev", nil, []string{"cur"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Endpoint{Secret: "cur", PreviousSecret: tt.previous, PreviousExpiresAt: tt.expires}
			if got := e.SigningSecrets(now); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("SigningSecrets = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReceiversFilterBySubscription(t *testing.T) {
	off := time.Now()
	eps := []Endpoint{
		{ID: "all", Types: Types},
		{ID: "money", Types: []Type{PaymentCompleted, JobFailed}},
		{ID: "done", Types: []Type{JobCompleted}},
		{ID: "disabled", Types: Types, DisabledAt: &off},
		{ID: "none"},
	}
	tests := []struct {
		typ  Type
		want []string
	}{
		{JobCreated, []string{"all"}},
		{PaymentCompleted, []string{"all", "money"}},
		{JobCompleted, []string{"all", "done"}},
		{JobFailed, []string{"all", "money"}},
		{"job.deleted", nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ), func(t *testing.T) {
			var got []string
			for _, e := range Receivers(eps, tt.typ) {
				got = append(got, e.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("Receivers = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://hooks.example.com/hires", true},
		{"http://127.0.0.1:8080/in?token=abc", true},
		{"HTTPS://a.example/h", true},
		{"", false},
		{" https://a.example/h", false},
		{"ftp://a.example/h", false},
		{"a.example/h", false},
		{"/hooks", false},
		{"https:///h", false},
		{"http://:8080/h", false},
		{"https:a.example", false},
		{"https://user:hunter2@a.example/h", false},
		{"https://hunter2@a.example/h", false},
		{"http://a.example/%zz?token=hunter2", false},
		{"javascript:alert(1)", false},
		{"https://a.example/h#frag", false},
		{"https://a.example/" + strings.Repeat("a", 2048), false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := CheckURL(tt.url)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckURL = %v, want ok %v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidEndpoint) {
					t.Fatalf("CheckURL error %v does not wrap ErrInvalidEndpoint", err)
				}
				checkSafe(t, err, "hunter2")
			}
		})
	}
}

func TestParseTypes(t *testing.T) {
	tests := []struct {
		in   []string
		want []Type
		ok   bool
	}{
		{[]string{"job.completed"}, []Type{JobCompleted}, true},
		{[]string{"job.failed", "job.created", "job.failed"}, []Type{JobCreated, JobFailed}, true},
		{[]string{"job.created", "payment.completed", "job.completed", "job.failed"}, Types, true},
		{nil, nil, false},
		{[]string{}, nil, false},
		{[]string{"job.deleted"}, nil, false},
		{[]string{"JOB.CREATED"}, nil, false},
		{[]string{"job.created", ""}, nil, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			got, err := ParseTypes(tt.in)
			if (err == nil) != tt.ok || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("ParseTypes = %v, %v; want %v, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	if a == b {
		t.Fatal("NewSecret repeated itself")
	}
	for _, s := range []string{a, b} {
		if err := CheckSecret(s); err != nil {
			t.Fatalf("CheckSecret(NewSecret()) = %v", err)
		}
	}
	for _, s := range []string{"", "whsec_", "secret", "whsec_!!!!", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)),
		strings.TrimPrefix(a, SecretPrefix)} {
		if CheckSecret(s) == nil {
			t.Errorf("CheckSecret(%q) = nil", s)
		}
	}
}
