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

// Derive returns a token only the holder of key can recompute for subject.
// A job created with an Idempotency-Key gets its access token this way, so
// that repeating the request returns the same token while the database
// holds no more than its hash.
func Derive(key, subject string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("hires access token\x00" + subject))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
