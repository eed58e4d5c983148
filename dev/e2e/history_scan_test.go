//go:build integration

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"

	"hires/internal/historyscan"
	"hires/internal/token"
)

// notedSecrets are values tests registered with noteSecret.
var notedSecrets sync.Map

// noteSecret registers a value (a site key, say) that no workflow history
// may hold: scanHistories, run after every test, fails the suite if one does.
func noteSecret(v string) { notedSecrets.Store(v, true) }

// scanHistories reads every workflow's history in the dev server's
// namespace, after all the tests ran, and reports any that holds customer
// data or a secret: an email or Stripe customer email from the jobs table,
// a job's Checkout URL, download token or callback secret, an access token
// (token.Access under ACCESS_TOKEN_SECRET, or handed to a test), a
// configured secret, a value noted by a test, or anything the generic
// detectors of historyscan recognize (addresses, token= values,
// token-shaped strings, fields that carried them). Run from TestMain after
// m.Run, so that it sees the workflows of whichever tests ran.
func scanHistories() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	scan, err := historyScanner(ctx)
	if err != nil {
		return err
	}
	var (
		workflows, events int
		found             []string
		next              []byte
	)
	for {
		resp, err := temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: "default", PageSize: 500, NextPageToken: next})
		if err != nil {
			return fmt.Errorf("list workflows: %w", err)
		}
		for _, ex := range resp.GetExecutions() {
			id, run := ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()
			it := temporal.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			var h historypb.History
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					return fmt.Errorf("history of %s: %w", id, err)
				}
				h.Events = append(h.Events, e)
			}
			workflows++
			events += len(h.Events)
			for _, f := range scan.Scan(&h) {
				found = append(found, fmt.Sprintf("%s (%s): %s", id, ex.GetType().GetName(), f))
			}
		}
		if next = resp.GetNextPageToken(); len(next) == 0 {
			break
		}
	}
	for _, f := range found {
		fmt.Fprintln(os.Stderr, "e2e: history scan:", f)
	}
	fmt.Fprintf(os.Stderr, "e2e: history scan: %d workflow histories (%d events), %d findings\n", workflows, events, len(found))
	if len(found) > 0 {
		return fmt.Errorf("%d findings of customer data or secrets in the workflow histories", len(found))
	}
	return nil
}

// historyScanner knows every secret and customer value the suite made.
func historyScanner(ctx context.Context) (*historyscan.Scanner, error) {
	s := historyscan.New()
	for _, k := range []string{"ACCESS_TOKEN_SECRET", "ADMIN_TOKEN", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
		"UPSAMPLER_API_KEY"} {
		s.Add(k, stack.Env[k])
	}
	accessTokens.Range(func(k, _ any) bool { s.Add("access token given to a test", k.(string)); return true })
	notedSecrets.Range(func(k, _ any) bool { s.Add("noted by a test", k.(string)); return true })
	secret := []byte(stack.Env["ACCESS_TOKEN_SECRET"])
	if len(secret) == 0 {
		return nil, errors.New("history scan: no ACCESS_TOKEN_SECRET in the stack's environment")
	}
	conn, err := pgx.Connect(ctx, stack.Env["DATABASE_URL"])
	if err != nil {
		return nil, fmt.Errorf("history scan: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id::text, COALESCE(email, ''), COALESCE(customer_email, ''),
		COALESCE(download_token, ''), callback_secret, COALESCE(checkout_url, '') FROM jobs`)
	if err != nil {
		return nil, fmt.Errorf("history scan: %w", err)
	}
	for rows.Next() {
		var id, email, customer, download, callback, checkout string
		if err := rows.Scan(&id, &email, &customer, &download, &callback, &checkout); err != nil {
			return nil, fmt.Errorf("history scan: %w", err)
		}
		s.Add("email", email)
		s.Add("customer_email", customer)
		s.Add("download token", download)
		s.Add("callback secret", callback)
		s.Add("Checkout URL", checkout)
		s.Add("access token", token.Access(secret, id))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history scan: %w", err)
	}
	// Integration-event endpoints' signing secrets, current and past.
	rows, err = conn.Query(ctx, `SELECT secret, COALESCE(previous_secret, '') FROM webhook_endpoints`)
	if err != nil {
		return nil, fmt.Errorf("history scan: %w", err)
	}
	for rows.Next() {
		var cur, prev string
		if err := rows.Scan(&cur, &prev); err != nil {
			return nil, fmt.Errorf("history scan: %w", err)
		}
		s.Add("event signing secret", cur)
		s.Add("event signing secret", prev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history scan: %w", err)
	}
	s.Add("site key", stack.SiteKey)
	return s, nil
}
