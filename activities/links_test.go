package activities

import (
	"testing"

	"hires/internal/store"
	"hires/internal/token"
)

// Links to the customer's page are made from ACCESS_TOKEN_SECRET; a job
// whose token was not derived from it (created before) keeps the link its
// workflow was started with, the only place that token exists.
func TestPageURL(t *testing.T) {
	secret := []byte("access-secret-for-tests-0123456789")
	a := &Activities{AccessSecret: secret, PublicBaseURL: "https://hires.example.com"}
	const id = "5f2b8a3e-0d4c-4a51-9d1e-1b2c3d4e5f60"
	derived := store.Job{ID: id, AccessTokenHash: token.Hash(token.Access(secret, id))}
	legacy := store.Job{ID: id, AccessTokenHash: token.Hash("an older random token")}
	other := store.Job{ID: id, AccessTokenHash: token.Hash(token.Access([]byte("another secret"), id))}
	page := "https://hires.example.com/jobs/" + id + "?token=" + token.Access(secret, id)
	tests := []struct {
		name           string
		job            store.Job
		suffix, legacy string
		want           string
	}{
		{"derived", derived, "", "", page},
		{"derived, success", derived, checkoutSuccess, "", page + "&checkout=success"},
		{"derived, cancelled", derived, checkoutCancelled, "", page + "&checkout=cancelled"},
		{"derived ignores the old link", derived, "", "https://old.example.com/x?token=t", page},
		{"legacy uses the old link", legacy, checkoutSuccess, "https://old.example.com/x?token=t&checkout=success", "https://old.example.com/x?token=t&checkout=success"},
		{"legacy without a link", legacy, "", "", ""},
		{"under another secret", other, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := a.pageURL(tt.job, tt.suffix, tt.legacy); got != tt.want {
				t.Errorf("pageURL = %q, want %q", got, tt.want)
			}
		})
	}
}
