// Package urlguard decides which URLs the service may fetch: only hosts on
// an allow-list, never a loopback or private address unless that address is
// itself on the list. It guards both the validation of customers' image URLs
// and the dialling of downloads, so that DNS cannot redirect a fetch inward.
package urlguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Policy is an allow-list of hosts. An entry is a host name ("cdn.example.com"),
// a wildcard for subdomains ("*.example.com"), or either with a port
// ("127.0.0.1:8090"), which then matches only that port.
type Policy struct {
	entries []entry
}

type entry struct {
	host     string // lower-case, without port
	port     string // "" matches any port
	wildcard bool
}

// ErrNotAllowed is wrapped by every rejection.
var ErrNotAllowed = errors.New("url not allowed")

// New builds a policy from allow-list entries.
func New(hosts []string) (*Policy, error) {
	p := &Policy{}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		e := entry{}
		if strings.HasPrefix(h, "*.") {
			e.wildcard, h = true, h[2:]
		}
		if strings.ContainsAny(h, "/@?#*") {
			return nil, fmt.Errorf("urlguard: invalid allow-list entry %q", h)
		}
		if host, port, err := net.SplitHostPort(h); err == nil {
			if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				return nil, fmt.Errorf("urlguard: invalid port in allow-list entry %q", h)
			}
			h, e.port = host, port
		}
		if h == "" {
			return nil, fmt.Errorf("urlguard: invalid allow-list entry %q", h)
		}
		e.host = h
		p.entries = append(p.entries, e)
	}
	if len(p.entries) == 0 {
		return nil, errors.New("urlguard: empty allow-list")
	}
	return p, nil
}

// Check parses raw and returns it if the policy allows fetching it.
func (p *Policy) Check(raw string) (*url.URL, error) {
	if len(raw) > 2048 {
		return nil, fmt.Errorf("%w: longer than 2048 characters", ErrNotAllowed)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed URL", ErrNotAllowed)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme must be http or https", ErrNotAllowed)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in URLs are not accepted", ErrNotAllowed)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host", ErrNotAllowed)
	}
	if err := plainHost(u.Hostname()); err != nil {
		return nil, err
	}
	if !p.allowsHost(u.Hostname(), u.Port()) {
		return nil, fmt.Errorf("%w: host %q is not on the allow-list", ErrNotAllowed, u.Host)
	}
	return u, nil
}

// plainHost accepts ASCII host names with non-empty labels only: Unicode
// case folding (İ lowers to i) and IDNA mapping would otherwise let a
// different domain pass for an allowed one. Internationalised names must be
// given in their xn-- form.
func plainHost(host string) error {
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return fmt.Errorf("%w: host %q is not plain ASCII (use its xn-- form)", ErrNotAllowed, host)
		}
	}
	name := strings.TrimSuffix(host, ".")
	if strings.Contains(host, ":") { // an IPv6 literal
		return nil
	}
	if name == "" || strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
		return fmt.Errorf("%w: host %q has an empty label", ErrNotAllowed, host)
	}
	return nil
}

func (p *Policy) allowsHost(host, port string) bool {
	host = asciiLower(strings.TrimSuffix(host, "."))
	for _, e := range p.entries {
		if e.port != "" && e.port != port {
			continue
		}
		if e.wildcard && strings.HasSuffix(host, "."+e.host) || !e.wildcard && host == e.host {
			return true
		}
	}
	return false
}

// explicitlyAllows reports whether an IP address appears literally on the
// list, with this port if the entry has one.
func (p *Policy) explicitlyAllows(ip netip.Addr, port string) bool {
	for _, e := range p.entries {
		if e.port != "" && e.port != port {
			continue
		}
		if a, err := netip.ParseAddr(e.host); err == nil && a.Unmap() == ip.Unmap() {
			return true
		}
	}
	return false
}

// sharedSpace is carrier-grade NAT space (RFC 6598), internal to providers.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// internal reports addresses that must never be reached through a name.
func internal(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() ||
		ip.IsInterfaceLocalMulticast() || sharedSpace.Contains(ip)
}

// control runs after DNS resolution, on the address actually dialled.
func (p *Policy) control(_, address string, _ syscall.RawConn) error {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: unexpected address %q", ErrNotAllowed, address)
	}
	if internal(ip) && !p.explicitlyAllows(ip, port) {
		return fmt.Errorf("%w: %s is an internal address", ErrNotAllowed, ip)
	}
	return nil
}

// HTTPClient returns a client that only connects to allowed URLs: every
// request and every redirect is checked against the policy, and the dialled
// address must not be internal unless it is listed literally.
func (p *Policy) HTTPClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: p.control}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would hide the real destination from control
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: &guarded{p: p, next: transport},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("urlguard: too many redirects")
			}
			return nil
		},
	}
}

// guarded checks each request's URL, redirects included, before sending it.
type guarded struct {
	p    *Policy
	next http.RoundTripper
}

func (g *guarded) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, err := g.p.Check(req.URL.String()); err != nil {
		return nil, err
	}
	return g.next.RoundTrip(req)
}

// DialContext is exposed for tests and for callers that build their own transport.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: p.control}
	return d.DialContext(ctx, network, addr)
}

// asciiLower lowers A-Z only (hosts are plain ASCII by then).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
