package api

import (
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errUnavailable answers a request that failed because PostgreSQL or
// Temporal is unreachable for now: 503, which clients retry, rather than
// a 500, which they may not. Each write of the API is idempotent or behind
// an Idempotency-Key, so a retry finishes what the failed request began.
var errUnavailable = fail(503, "unavailable",
	"a service the API depends on is unavailable for now; retry shortly (a job creation with the same Idempotency-Key resumes where it stopped)")

// unavailable tells an outage of a dependency, which a retry can outlive,
// from a fault of the request or of the code.
func unavailable(err error) bool {
	var (
		pgErr   *pgconn.PgError
		connErr *pgconn.ConnectError
		netErr  *net.OpError
		unavail *serviceerror.Unavailable
		exhaust *serviceerror.ResourceExhausted
		dead    *serviceerror.DeadlineExceeded
	)
	switch {
	case err == nil:
		return false
	case errors.As(err, &unavail), errors.As(err, &exhaust), errors.As(err, &dead):
		return true
	case errors.As(err, &connErr), errors.As(err, &netErr), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), pgconn.Timeout(err):
		return true
	case errors.As(err, &pgErr):
		// Connection exceptions, the server shutting down or starting up,
		// too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	}
	// A gRPC status anywhere in the chain (status.FromError unwraps).
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded:
			return true
		}
	}
	return false
}
