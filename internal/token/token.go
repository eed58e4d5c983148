// Package token makes and checks the service's secrets: download tokens,
// job access tokens and callback secrets.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// DownloadLength is the length of download tokens, as in the original.
const DownloadLength = 64

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Alnum returns n random characters from [A-Za-z0-9], drawn from crypto/rand
// without modulo bias (bytes of 248 and above are rejected: 248 = 4 x 62).
func Alnum(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		rand.Read(buf) // never fails (crypto/rand panics on an unusable source)
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out)
}

// IsAlnum reports whether s has exactly n characters from [A-Za-z0-9].
func IsAlnum(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Hash is what the database keeps of a secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Matches compares secret with a stored hash in constant time.
func Matches(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(Hash(secret), hash) == 1
}

// Access returns a job's access token: an HMAC of the job ID under the
// service's ACCESS_TOKEN_SECRET. Only the service can compute it (no value
// a client chose or can see goes in), so the API can hand the same token
// to a site replaying its request and the worker can put it in the
// customer's links, while the database keeps only its hash and Temporal
// never sees it.
func Access(secret []byte, jobID string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("hires access token v2\x00" + jobID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
