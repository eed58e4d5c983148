package notify

import (
	"testing"

	"hires/internal/store"
	"hires/internal/token"
)

// Links to the customer's page carry the access token derived from
// ACCESS_TOKEN_SECRET: the one the API handed out for the job.
func TestPageURL(t *testing.T) {
	secret := []byte("access-secret-for-tests-0123456789")
	const id = "5f2b8a3e-0d4c-4a51-9d1e-1b2c3d4e5f60"
	tests := []struct {
		name string
		base string
		id   string
		want string
	}{
		{"a job", "https://hires.example.com", id, "https://hires.example.com/jobs/" + id + "?token=" + token.Access(secret, id)},
		{"under a path", "https://example.com/hires", id, "https://example.com/hires/jobs/" + id + "?token=" + token.Access(secret, id)},
		{"an ID to escape", "https://hires.example.com", "a/b c", "https://hires.example.com/jobs/a%2Fb%20c?token=" + token.Access(secret, "a/b c")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Dispatcher{AccessSecret: secret, PublicBaseURL: tt.base}
			got := d.pageURL(store.Job{ID: tt.id})
			if got != tt.want {
				t.Errorf("pageURL = %q, want %q", got, tt.want)
			}
			if tok := got[len(got)-len(token.Access(secret, tt.id)):]; !token.Matches(tok, token.Hash(token.Access(secret, tt.id))) {
				t.Errorf("the link's token %q is not the job's", tok)
			}
		})
	}
}
