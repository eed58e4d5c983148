package localstack

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
)

// newRoundRobin is the load balancer in front of the API replicas: each
// request goes to the next one, with X-Forwarded-For/-Host/-Proto set as a
// real proxy sets them (the replicas trust them from loopback only).
func newRoundRobin(targets []string) (http.Handler, error) {
	urls := make([]*url.URL, len(targets))
	for i, t := range targets {
		u, err := url.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("localstack: proxy target %q: %w", t, err)
		}
		urls[i] = u
	}
	var next atomic.Uint64
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(urls[(next.Add(1)-1)%uint64(len(urls))])
			r.SetXForwarded()
			r.Out.Host = r.In.Host // the replicas build links from PUBLIC_BASE_URL, not Host
		},
		// Server-sent events on the customer's page must not be buffered.
		FlushInterval: -1,
	}, nil
}
