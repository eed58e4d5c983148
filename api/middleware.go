package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"
)

// perMinute limits each client (by address) to n requests a minute, with
// bursts of up to n/4 (at least 2).
func perMinute(n int) echo.MiddlewareFunc {
	store := middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
		Rate: rate.Limit(float64(n) / 60), Burst: max(n/4, 2), ExpiresIn: 5 * time.Minute,
	})
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store:               store,
		IdentifierExtractor: func(c echo.Context) (string, error) { return c.RealIP(), nil },
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			c.Response().Header().Set("Retry-After", "60")
			return fail(http.StatusTooManyRequests, "rate_limited", "too many requests; retry in a minute")
		},
		ErrorHandler: func(echo.Context, error) error {
			return fail(http.StatusForbidden, "forbidden", "client address unknown")
		},
	})
}

// cors lets the configured site origins read a job from a browser: the
// customer's status, polled from the site's own page with the access token.
func (s *Server) cors() echo.MiddlewareFunc {
	if len(s.cfg.SiteOrigins) == 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:  s.cfg.SiteOrigins,
		AllowMethods:  []string{http.MethodGet},
		AllowHeaders:  []string{echo.HeaderAuthorization},
		ExposeHeaders: []string{echo.HeaderXRequestID},
		MaxAge:        600,
	})
}

// timeout bounds a handler's context; downloads stream and are not bound.
func timeout(d time.Duration) echo.MiddlewareFunc {
	return middleware.ContextTimeoutWithConfig(middleware.ContextTimeoutConfig{Timeout: d})
}

// clientIP decides where the client's address comes from: X-Forwarded-For
// is believed only as far as it was written by the configured proxies
// (walking it from the right, the first address not theirs is the client);
// without proxies, or from anyone else, the connection's address counts.
func (s *Server) clientIP() (echo.IPExtractor, error) {
	nets, err := s.cfg.TrustedNetworks()
	if err != nil {
		return nil, err
	}
	if len(nets) == 0 {
		return echo.ExtractIPDirect(), nil // headers are the client's to forge
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range nets {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...), nil
}
