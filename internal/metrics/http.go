package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// unmatchedRoute labels requests no route matched.
const unmatchedRoute = "unmatched"

// HTTP is the API's request metrics.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// HTTP registers (once) and returns the request metrics.
func (r *Registry) HTTP() *HTTP {
	if r == nil {
		return nil
	}
	r.httpOnce.Do(func() {
		h := &HTTP{
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: Namespace, Subsystem: "http", Name: "requests_total",
				Help: "HTTP requests answered, by method, route pattern and status code.",
			}, []string{"method", "route", "status"}),
			duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
				Help:    "Time to answer an HTTP request, by method and route pattern.",
				Buckets: prometheus.DefBuckets,
			}, []string{"method", "route"}),
		}
		r.reg.MustRegister(h.requests, h.duration)
		r.http = h
	})
	return r.http
}

// Middleware records every request by its route pattern (c.Path(), such as
// /v1/downloads/:token), never by its raw path: paths carry tokens and
// secrets, and raw paths would make the label set unbounded. Put it first,
// so the status it reads is the final one, errors and panics included.
func (h *HTTP) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if h == nil {
			return next
		}
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err) // writes the answer, so its status is known
			}
			route := c.Path()
			if route == "" {
				route = unmatchedRoute
			}
			method := methodLabel(c.Request().Method)
			h.requests.WithLabelValues(method, route, strconv.Itoa(c.Response().Status)).Inc()
			h.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

// methodLabel bounds the method label: any method not in HTTP's standard
// set counts as "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}
