// Package sitekey makes and recognises the keys selling sites authenticate
// with. A key is "hires_sk_" followed by 43 random characters from
// [A-Za-z0-9] (256 bits): the prefix lets secret scanners and people
// recognise a leaked key, and the database keeps only its SHA-256.
package sitekey

import (
	"strings"

	"hires/internal/token"
)

// Prefix starts every site key.
const Prefix = "hires_sk_"

// randomLen is the length of the random part.
const randomLen = 43

// Len is the length of a whole key.
const Len = len(Prefix) + randomLen

// shownLen is how much of a key lists show: enough to tell keys apart,
// far too little to guess the rest.
const shownLen = len(Prefix) + 6

// New returns a fresh key.
func New() string { return Prefix + token.Alnum(randomLen) }

// Valid reports whether s has the shape of a site key.
func Valid(s string) bool {
	rest, ok := strings.CutPrefix(s, Prefix)
	return ok && token.IsAlnum(rest, randomLen)
}

// Looks reports whether s is meant as a site key (it has the prefix), valid or not.
func Looks(s string) bool { return strings.HasPrefix(s, Prefix) }

// Hash is what the database keeps of a key.
func Hash(key string) []byte { return token.Hash("site key\x00" + key) }

// Shown is the part of a key that lists and logs may show, e.g. "hires_sk_Ab12Cd…".
func Shown(key string) string {
	if len(key) < shownLen {
		return ""
	}
	return key[:shownLen] + "…"
}

// Bearer returns the credential of an Authorization header value:
// "Bearer <credential>", the scheme matched case-insensitively (RFC 9110
// §11.1), one or more spaces after it, nothing after the credential.
func Bearer(header string) (string, bool) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred := strings.TrimLeft(rest, " ")
	if cred == "" || strings.ContainsAny(cred, " \t\r\n") {
		return "", false
	}
	return cred, true
}
