//go:build integration

package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/dev/devstack"
	"hires/internal/jobs"
	"hires/internal/store"
)

// One PostgreSQL server for the whole package. Every test works on jobs
// with their own random IDs, so tests do not depend on each other; tests
// that need an empty table (List, Migrate) get a database of their own.
var (
	pg   *devstack.Postgres
	st   *store.Store  // the store under test, on database "hires"
	pool *pgxpool.Pool // a second pool on the same database, for raw SQL
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var err error
	pg, err = devstack.StartPostgres(ctx, devstack.PostgresOptions{})
	if err != nil {
		// Fail, never skip: these tests are the only check of the SQL.
		fmt.Fprintf(os.Stderr, "store integration tests: start PostgreSQL: %v\n", err)
		return 1
	}
	defer func() {
		if err := pg.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "store integration tests: stop PostgreSQL: %v\n", err)
		}
	}()

	// Twice: the second run must find everything applied and do nothing.
	for i := 1; i <= 2; i++ {
		if err := store.Migrate(ctx, pg.URL); err != nil {
			fmt.Fprintf(os.Stderr, "store integration tests: migrate (run %d): %v\n", i, err)
			return 1
		}
	}

	st, err = store.Open(ctx, pg.URL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "store integration tests: open store: %v\n", err)
		return 1
	}
	defer st.Close()

	pool, err = pgxpool.New(ctx, pg.URL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "store integration tests: open raw pool: %v\n", err)
		return 1
	}
	defer pool.Close()

	return m.Run()
}

// ---------------------------------------------------------------------------
// helpers

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func ptr[T any](v T) *T { return &v }

// before is a cursor just before time t: every job ordered strictly earlier.
func before(t time.Time) *store.Cursor {
	return &store.Cursor{At: t, ID: "00000000-0000-0000-0000-000000000000"}
}

// newJobInput returns a valid job with a fresh ID and idempotency key.
func newJobInput() store.NewJob {
	id := uuid.NewString()
	return store.NewJob{
		ID:                 id,
		ImageURL:           "https://images.example.com/" + id + ".png",
		Resolution:         jobs.Resolution4x,
		Email:              "buyer@example.com",
		PostID:             42,
		AttachmentID:       ptr(int64(7)),
		ImageWidth:         640,
		ImageHeight:        480,
		OutputWidth:        2560,
		OutputHeight:       1920,
		AccessTokenHash:    hash("access:" + id),
		Site:               "shop",
		RequestHash:        hash("request:" + id),
		CallbackSecret:     "secret-" + id,
		Currency:           "usd",
		PriceCents:         499,
		MarkupPercent:      30,
		EstimatedCredits:   16,
		EstimatedCostCents: 64,
		CheckoutExpiresAt:  time.Now().Add(30 * time.Minute).Truncate(time.Microsecond),
	}
}

func createJob(t *testing.T, n store.NewJob) store.Job {
	t.Helper()
	job, created, err := st.CreateJob(t.Context(), n)
	require.NoError(t, err)
	require.True(t, created, "job %s was not created", n.ID)
	return job
}

func getJob(t *testing.T, id string) store.Job {
	t.Helper()
	job, err := st.Get(t.Context(), id)
	require.NoError(t, err)
	return job
}

func events(t *testing.T, id string) []store.Event {
	t.Helper()
	evs, err := st.Events(t.Context(), id)
	require.NoError(t, err)
	return evs
}

func countRows(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), query, args...).Scan(&n))
	return n
}

func payment(id string) store.Payment {
	return store.Payment{JobID: id, Cause: "evt_" + id, PaymentIntentID: "pi_" + id,
		AmountCents: 499, Currency: "usd", CustomerEmail: "payer@example.com"}
}

func completion(id, token string) store.Completion {
	return store.Completion{
		JobID: id, UpsamplerJobID: "ups-" + id, UpsamplerCredits: 12.4,
		ResultKey: "results/" + id + ".png", ContentType: "image/png", Bytes: 123456,
		SHA256: fmt.Sprintf("%x", hash(id)), Width: 2560, Height: 1920,
		DownloadToken: token, DownloadExpiresAt: time.Now().Add(time.Hour).Truncate(time.Microsecond),
	}
}

// jobIn creates a job and drives it to status through the store's own methods.
func jobIn(t *testing.T, status jobs.Status) string {
	t.Helper()
	ctx := t.Context()
	id := createJob(t, newJobInput()).ID
	switch status {
	case jobs.StatusAwaitingPayment:
	case jobs.StatusPending, jobs.StatusProcessing, jobs.StatusCompleted:
		require.NoError(t, st.MarkPaid(ctx, payment(id)))
		if status == jobs.StatusPending {
			break
		}
		require.NoError(t, st.MarkProcessing(ctx, id, "ups-"+id))
		if status == jobs.StatusProcessing {
			break
		}
		require.NoError(t, st.MarkCompleted(ctx, completion(id, "setup-token-"+id)))
	case jobs.StatusFailed:
		require.NoError(t, st.MarkFailed(ctx, id, jobs.ReasonCheckoutFailed, "setup"))
	case jobs.StatusAbandoned:
		require.NoError(t, st.MarkAbandoned(ctx, id, "setup", jobs.PaymentExpired))
	default:
		t.Fatalf("jobIn: unknown status %q", status)
	}
	require.Equal(t, status, getJob(t, id).Status)
	return id
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// createDatabase creates an empty database on the shared server, dropped
// at the end of the test, and returns its URL.
func createDatabase(t *testing.T) string {
	t.Helper()
	name := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	_, err := pool.Exec(t.Context(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := pool.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		assert.NoError(t, err)
	})
	u, err := url.Parse(pg.URL)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

// newDatabase returns a store on a new, migrated database, for tests that
// need to see every row of a table.
func newDatabase(t *testing.T) (*store.Store, string) {
	t.Helper()
	dbURL := createDatabase(t)
	require.NoError(t, store.Migrate(t.Context(), dbURL))
	s, err := store.Open(t.Context(), dbURL)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s, dbURL
}

// ---------------------------------------------------------------------------
// Migrate

func TestMigrateIsIdempotentAndSafeConcurrently(t *testing.T) {
	ctx := t.Context()

	// TestMain migrated "hires" twice: version 1 is recorded exactly once.
	assert.Equal(t, 1, countRows(t, `SELECT count(*) FROM goose_db_version WHERE version_id = 1 AND is_applied`))
	require.NoError(t, store.Migrate(ctx, pg.URL))
	assert.Equal(t, 1, countRows(t, `SELECT count(*) FROM goose_db_version WHERE version_id = 1`))

	// Several processes starting at once on an empty database.
	dbURL := createDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = store.Migrate(ctx, dbURL) })
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "concurrent migration %d", i)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var applied int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM goose_db_version WHERE version_id = 1`).Scan(&applied))
	assert.Equal(t, 1, applied)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"goose_db_version", "idempotency_keys", "job_events", "jobs", "outbox", "rate_limits",
		"site_keys", "stripe_events", "webhook_deliveries", "webhook_endpoints", "webhook_events"}, tables)
}

// ---------------------------------------------------------------------------
// CreateJob

func TestCreateJob(t *testing.T) {
	ctx := t.Context()

	t.Run("inserts awaiting_payment with one audit row", func(t *testing.T) {
		tests := []struct {
			name   string
			modify func(*store.NewJob)
			check  func(t *testing.T, n store.NewJob, job store.Job)
		}{
			{
				name:   "all fields",
				modify: func(*store.NewJob) {},
				check: func(t *testing.T, n store.NewJob, job store.Job) {
					assert.Equal(t, ptr(n.Email), job.Email)
					assert.Equal(t, n.AttachmentID, job.AttachmentID)
					assert.Equal(t, ptr(n.Site), job.Site)
				},
			},
			{
				name: "no email, attachment or site",
				modify: func(n *store.NewJob) {
					n.Email, n.AttachmentID, n.Site = "", nil, ""
					n.Resolution, n.OutputWidth, n.OutputHeight = jobs.Resolution8x, 5120, 3840
				},
				check: func(t *testing.T, n store.NewJob, job store.Job) {
					assert.Nil(t, job.Email, "empty email must be stored as NULL")
					assert.Nil(t, job.AttachmentID)
					assert.Nil(t, job.Site)
					assert.Equal(t, jobs.Resolution8x, job.Resolution)
				},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				n := newJobInput()
				tt.modify(&n)
				job, created, err := st.CreateJob(ctx, n)
				require.NoError(t, err)
				assert.True(t, created)

				assert.Equal(t, n.ID, job.ID)
				assert.Equal(t, jobs.StatusAwaitingPayment, job.Status)
				assert.Equal(t, jobs.PaymentPending, job.PaymentStatus)
				assert.Equal(t, n.ImageURL, job.ImageURL)
				assert.Equal(t, n.Resolution, job.Resolution)
				assert.Equal(t, n.PostID, job.PostID)
				assert.Equal(t, n.ImageWidth, job.ImageWidth)
				assert.Equal(t, n.ImageHeight, job.ImageHeight)
				assert.Equal(t, n.OutputWidth, job.OutputWidth)
				assert.Equal(t, n.OutputHeight, job.OutputHeight)
				assert.Equal(t, n.AccessTokenHash, job.AccessTokenHash)
				assert.Equal(t, n.RequestHash, job.RequestHash)
				assert.Equal(t, n.CallbackSecret, job.CallbackSecret)
				assert.Equal(t, n.Currency, job.Currency)
				assert.Equal(t, n.PriceCents, job.PriceCents)
				assert.Equal(t, n.MarkupPercent, job.MarkupPercent)
				assert.Equal(t, n.EstimatedCredits, job.EstimatedCredits)
				assert.Equal(t, n.EstimatedCostCents, job.EstimatedCostCents)
				require.NotNil(t, job.CheckoutExpiresAt)
				assert.True(t, n.CheckoutExpiresAt.Equal(*job.CheckoutExpiresAt),
					"checkout_expires_at %v, want %v", *job.CheckoutExpiresAt, n.CheckoutExpiresAt)
				assert.Nil(t, job.CheckoutSessionID)
				assert.Nil(t, job.PaidAt)
				assert.Nil(t, job.DownloadToken)
				assert.False(t, job.CreatedAt.IsZero())
				assert.True(t, job.CreatedAt.Equal(job.UpdatedAt))
				tt.check(t, n, job)

				// What CreateJob returned is what is stored.
				assert.Equal(t, job, getJob(t, n.ID))

				evs := events(t, n.ID)
				require.Len(t, evs, 1)
				assert.Nil(t, evs[0].FromStatus)
				assert.Equal(t, string(jobs.StatusAwaitingPayment), evs[0].ToStatus)
				assert.Equal(t, "created", evs[0].Cause)
				assert.Nil(t, evs[0].Detail)
				assert.Equal(t, n.ID, evs[0].JobID)
				assert.True(t, evs[0].At.Equal(job.CreatedAt), "event at %v, job created %v", evs[0].At, job.CreatedAt)
			})
		}
	})

	t.Run("the same ID returns the existing job unchanged", func(t *testing.T) {
		first := newJobInput()
		orig := createJob(t, first)

		again := first // a resumed request: same ID, whatever else
		again.ImageURL = "https://images.example.com/other.png"
		job, created, err := st.CreateJob(ctx, again)
		require.NoError(t, err)
		assert.False(t, created)
		assert.Equal(t, orig, job, "the existing job, unchanged")
		assert.Len(t, events(t, first.ID), 1, "no second audit row")
	})

	t.Run("concurrent creations of one ID make one job", func(t *testing.T) {
		in := newJobInput()
		const n = 10
		type result struct {
			job     store.Job
			created bool
			err     error
		}
		results := make([]result, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				job, created, err := st.CreateJob(ctx, in)
				results[i] = result{job, created, err}
			})
		}
		close(start)
		wg.Wait()
		createdCount := 0
		for i, r := range results {
			require.NoError(t, r.err, "caller %d", i)
			assert.Equal(t, in.ID, r.job.ID, "caller %d got another job", i)
			if r.created {
				createdCount++
			}
		}
		assert.Equal(t, 1, createdCount)
		assert.Len(t, events(t, in.ID), 1)
	})

	t.Run("identical requests are distinct jobs", func(t *testing.T) {
		for range 3 {
			n := newJobInput()
			n.RequestHash = hash("same request")
			job, created, err := st.CreateJob(ctx, n)
			require.NoError(t, err)
			assert.True(t, created)
			assert.Equal(t, n.ID, job.ID)
			assert.Len(t, events(t, job.ID), 1)
		}
	})

	t.Run("database rejects invalid values", func(t *testing.T) {
		// Through the store: its transaction must roll back, leaving no audit row.
		tests := []struct {
			name   string
			modify func(*store.NewJob)
		}{
			{"resolution 2x", func(n *store.NewJob) { n.Resolution = "2x" }},
			{"empty resolution", func(n *store.NewJob) { n.Resolution = "" }},
			{"zero price", func(n *store.NewJob) { n.PriceCents = 0 }},
			{"zero width", func(n *store.NewJob) { n.ImageWidth = 0 }},
			{"negative post", func(n *store.NewJob) { n.PostID = -1 }},
			{"negative attachment", func(n *store.NewJob) { n.AttachmentID = ptr(int64(-1)) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				n := newJobInput()
				tt.modify(&n)
				_, created, err := st.CreateJob(ctx, n)
				require.Error(t, err)
				assert.False(t, created)
				assert.Equal(t, "23514", pgCode(err), "check_violation, got %v", err)
				_, err = st.Get(ctx, n.ID)
				assert.ErrorIs(t, err, store.ErrNotFound)
				assert.Equal(t, 0, countRows(t, `SELECT count(*) FROM job_events WHERE job_id = $1`, n.ID))
			})
		}
	})

	t.Run("CHECK constraints on raw SQL", func(t *testing.T) {
		insert := `INSERT INTO jobs (id, status, image_url, resolution, image_width, image_height,
			output_width, output_height, access_token_hash, request_hash, callback_secret, currency,
			price_cents, markup_percent, estimated_credits, estimated_cost_cents)
			VALUES ($1, $2, 'https://x/a.png', $3, 10, 10, 40, 40, '\x00', '\x00', 's', 'usd', 100, 0, 1, 1)`
		tests := []struct {
			name       string
			status     string
			resolution string
			wantCode   string
		}{
			{"valid row", "awaiting_payment", "4x", ""},
			{"every status is accepted: completed", "completed", "8x", ""},
			{"unknown status", "paid", "4x", "23514"},
			{"status in upper case", "PENDING", "4x", "23514"},
			{"empty status", "", "4x", "23514"},
			{"unknown resolution", "pending", "16x", "23514"},
			{"resolution without x", "pending", "4", "23514"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := uuid.NewString()
				_, err := pool.Exec(ctx, insert, id, tt.status, tt.resolution)
				if tt.wantCode == "" {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				assert.Equal(t, tt.wantCode, pgCode(err), "got %v", err)
				assert.Equal(t, 0, countRows(t, `SELECT count(*) FROM jobs WHERE id = $1`, id))
			})
		}

		// Updates are checked too.
		id := jobIn(t, jobs.StatusAwaitingPayment)
		_, err := pool.Exec(ctx, `UPDATE jobs SET status = 'refunded' WHERE id = $1`, id)
		assert.Equal(t, "23514", pgCode(err), "got %v", err)
		_, err = pool.Exec(ctx, `UPDATE jobs SET resolution = '2x' WHERE id = $1`, id)
		assert.Equal(t, "23514", pgCode(err), "got %v", err)
		assert.Equal(t, jobs.StatusAwaitingPayment, getJob(t, id).Status)

		// The trail cannot point at a job that does not exist.
		_, err = pool.Exec(ctx, `INSERT INTO job_events (job_id, to_status, cause) VALUES ($1, 'pending', 'x')`, uuid.NewString())
		assert.Equal(t, "23503", pgCode(err), "foreign_key_violation, got %v", err)
	})
}

// ---------------------------------------------------------------------------
// transitions

type transitionCase struct {
	name string
	from []jobs.Status // statuses the change may leave from
	to   jobs.Status
	// apply makes the change; attempt 1 is a repeat, deliberately with
	// different arguments, which must change nothing.
	apply  func(ctx context.Context, id string, attempt int) error
	cause  func(id string) string
	detail *string
	// want returns the job expected after the first apply, given the job
	// before and after it (for values set by now(), which the case checks).
	want func(t *testing.T, id string, before, after store.Job) store.Job
	// lenient: the method does not (yet) report a forbidden status or an
	// unknown job; only "changes nothing" is required. See the report on
	// MarkDownloadExpired.
	lenient bool
}

func transitionCases() []transitionCase {
	paidWith := func(email string) func(ctx context.Context, id string, attempt int) error {
		return func(ctx context.Context, id string, attempt int) error {
			p := store.Payment{JobID: id, Cause: "evt_first", PaymentIntentID: "pi_first",
				AmountCents: 499, Currency: "usd", CustomerEmail: email}
			if attempt > 0 {
				p = store.Payment{JobID: id, Cause: "evt_second", PaymentIntentID: "pi_second",
					AmountCents: 999, Currency: "eur", CustomerEmail: "other@example.com"}
			}
			return st.MarkPaid(ctx, p)
		}
	}
	completed := func(credits float64) func(ctx context.Context, id string, attempt int) error {
		return func(ctx context.Context, id string, attempt int) error {
			c := completion(id, "first-token-"+id)
			c.UpsamplerCredits = credits
			if attempt > 0 {
				c = completion(id, "second-token-"+id)
				c.ResultKey, c.Bytes, c.Width, c.UpsamplerCredits = "results/other.png", 1, 1, 99
			}
			return st.MarkCompleted(ctx, c)
		}
	}
	failedWith := func(detail string) func(ctx context.Context, id string, attempt int) error {
		return func(ctx context.Context, id string, attempt int) error {
			if attempt > 0 {
				return st.MarkFailed(ctx, id, jobs.ReasonUpsamplerTimeout, "second")
			}
			return st.MarkFailed(ctx, id, jobs.ReasonUpsamplerFailed, detail)
		}
	}
	fixed := func(s string) func(string) string { return func(string) string { return s } }

	return []transitionCase{
		{
			name: "MarkPaid", from: []jobs.Status{jobs.StatusAwaitingPayment}, to: jobs.StatusPending,
			apply: paidWith("payer@example.com"), cause: fixed("evt_first"),
			want: func(t *testing.T, id string, before, after store.Job) store.Job {
				w := before
				w.PaymentStatus = jobs.PaymentPaid
				w.PaymentIntentID = ptr("pi_first")
				w.AmountPaidCents = ptr(int64(499))
				w.PaidCurrency = ptr("usd")
				w.CustomerEmail = ptr("payer@example.com")
				requireNow(t, after.PaidAt, after)
				w.PaidAt = after.PaidAt
				return w
			},
		},
		{
			name: "MarkPaid without customer email", from: []jobs.Status{jobs.StatusAwaitingPayment}, to: jobs.StatusPending,
			apply: paidWith(""), cause: fixed("evt_first"),
			want: func(t *testing.T, id string, before, after store.Job) store.Job {
				w := before
				w.PaymentStatus = jobs.PaymentPaid
				w.PaymentIntentID = ptr("pi_first")
				w.AmountPaidCents = ptr(int64(499))
				w.PaidCurrency = ptr("usd")
				w.CustomerEmail = nil // NULLIF: empty is unknown, not ""
				requireNow(t, after.PaidAt, after)
				w.PaidAt = after.PaidAt
				return w
			},
		},
		{
			name: "MarkAbandoned", from: []jobs.Status{jobs.StatusAwaitingPayment}, to: jobs.StatusAbandoned,
			apply: func(ctx context.Context, id string, attempt int) error {
				if attempt > 0 {
					return st.MarkAbandoned(ctx, id, "second", jobs.PaymentFailed)
				}
				return st.MarkAbandoned(ctx, id, "evt_expired", jobs.PaymentExpired)
			},
			cause: fixed("evt_expired"),
			want: func(t *testing.T, id string, before, after store.Job) store.Job {
				w := before
				w.PaymentStatus = jobs.PaymentExpired
				return w
			},
		},
		{
			name: "MarkProcessing", from: []jobs.Status{jobs.StatusPending}, to: jobs.StatusProcessing,
			apply: func(ctx context.Context, id string, attempt int) error {
				if attempt > 0 {
					return st.MarkProcessing(ctx, id, "ups-second")
				}
				return st.MarkProcessing(ctx, id, "ups-first")
			},
			cause: fixed("upsampler:ups-first"),
			want: func(t *testing.T, id string, before, after store.Job) store.Job {
				w := before
				w.UpsamplerJobID = ptr("ups-first")
				requireNow(t, after.ProcessingStartedAt, after)
				w.ProcessingStartedAt = after.ProcessingStartedAt
				return w
			},
		},
		{
			name: "MarkCompleted", from: []jobs.Status{jobs.StatusProcessing}, to: jobs.StatusCompleted,
			apply: completed(12.4), cause: func(id string) string { return "upsampler:ups-" + id },
			want: func(t *testing.T, id string, before, after store.Job) store.Job {
				c := completion(id, "first-token-"+id)
				w := before
				w.UpsamplerCredits = ptr(12.4)
				w.UpsamplerCostCents = ptr(int64(50)) // 12.4 credits at 4 cents: 49.6, rounded
				w.ResultKey = ptr(c.ResultKey)
				w.ResultContentType = ptr("image/png")
				w.ResultBytes = ptr(int64(123456))
				w.ResultSHA256 = ptr(c.SHA256)
				w.ResultWidth = ptr(2560)
				w.ResultHeight = ptr(1920)
				w.DownloadToken = ptr("first-token-" + id)
				w.DownloadTokenHash = sha256Of("first-token-" + id)
				require.NotNil(t, after.DownloadExpiresAt)
				assert.True(t, c.DownloadExpiresAt.Sub(*after.DownloadExpiresAt).Abs() < time.Minute,
					"download_expires_at %v, want about %v", *after.DownloadExpiresAt, c.DownloadExpiresAt)
				w.DownloadExpiresAt = after.DownloadExpiresAt
				requireNow(t, after.ProcessingCompletedAt, after)
				w.ProcessingCompletedAt = after.ProcessingCompletedAt
				return w
			},
		},
		{
			name: "MarkCompleted without credit cost", from: []jobs.Status{jobs.StatusProcessing}, to: jobs.StatusCompleted,
			apply: completed(0), cause: func(id string) string { return "upsampler:ups-" + id },
			want: func(t *testing.T, id string, before, after store.Job) store.Job {
				c := completion(id, "first-token-"+id)
				w := before
				w.UpsamplerCredits, w.UpsamplerCostCents = nil, nil // unknown, not zero
				w.ResultKey = ptr(c.ResultKey)
				w.ResultContentType = ptr("image/png")
				w.ResultBytes = ptr(int64(123456))
				w.ResultSHA256 = ptr(c.SHA256)
				w.ResultWidth = ptr(2560)
				w.ResultHeight = ptr(1920)
				w.DownloadToken = ptr("first-token-" + id)
				w.DownloadTokenHash = sha256Of("first-token-" + id)
				w.DownloadExpiresAt = after.DownloadExpiresAt
				require.NotNil(t, after.DownloadExpiresAt)
				requireNow(t, after.ProcessingCompletedAt, after)
				w.ProcessingCompletedAt = after.ProcessingCompletedAt
				return w
			},
		},
		{
			name: "MarkFailed",
			from: []jobs.Status{jobs.StatusAwaitingPayment, jobs.StatusPending, jobs.StatusProcessing},
			to:   jobs.StatusFailed, apply: failedWith("Upsampler said no"),
			cause: fixed(jobs.ReasonUpsamplerFailed), detail: ptr("Upsampler said no"),
			want: func(t *testing.T, id string, before, after store.Job) store.Job {
				w := before
				w.FailureReason = ptr(jobs.ReasonUpsamplerFailed)
				w.FailureDetail = ptr("Upsampler said no")
				requireNow(t, after.FailedAt, after)
				w.FailedAt = after.FailedAt
				return w
			},
		},
		{
			name: "MarkFailed without detail",
			from: []jobs.Status{jobs.StatusAwaitingPayment, jobs.StatusPending, jobs.StatusProcessing},
			to:   jobs.StatusFailed, apply: failedWith(""),
			cause: fixed(jobs.ReasonUpsamplerFailed), detail: nil,
			want: func(t *testing.T, id string, before, after store.Job) store.Job {
				w := before
				w.FailureReason = ptr(jobs.ReasonUpsamplerFailed)
				w.FailureDetail = nil
				requireNow(t, after.FailedAt, after)
				w.FailedAt = after.FailedAt
				return w
			},
		},
		{
			// Not a status change: the job stays completed, the trail gets a row.
			name: "MarkDownloadExpired", from: []jobs.Status{jobs.StatusCompleted}, to: jobs.StatusCompleted,
			apply: func(ctx context.Context, id string, _ int) error { return st.MarkDownloadExpired(ctx, id) },
			cause: fixed("download_expired"),
			want: func(t *testing.T, id string, before, after store.Job) store.Job {
				w := before
				w.ResultKey = nil
				requireNow(t, after.DownloadExpiredAt, after)
				w.DownloadExpiredAt = after.DownloadExpiredAt
				return w
			},
			lenient: true,
		},
	}
}

// requireNow checks that a timestamp was set in the same transaction as
// the job's updated_at (both are now()).
func requireNow(t *testing.T, ts *time.Time, job store.Job) {
	t.Helper()
	require.NotNil(t, ts)
	require.True(t, ts.Equal(job.UpdatedAt), "timestamp %v not set with updated_at %v", *ts, job.UpdatedAt)
}

func TestTransitions(t *testing.T) {
	for _, tc := range transitionCases() {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()

			for _, from := range tc.from {
				t.Run("from "+string(from), func(t *testing.T) {
					id := jobIn(t, from)
					before := getJob(t, id)
					evBefore := events(t, id)

					require.NoError(t, tc.apply(ctx, id, 0))
					after := getJob(t, id)
					assert.Equal(t, tc.to, after.Status)
					assert.True(t, after.UpdatedAt.After(before.UpdatedAt), "updated_at not advanced")

					want := tc.want(t, id, before, after)
					want.Status = tc.to
					want.UpdatedAt = after.UpdatedAt
					assert.Equal(t, want, after, "fields written")

					evs := events(t, id)
					require.Len(t, evs, len(evBefore)+1)
					assert.Equal(t, evBefore, evs[:len(evBefore)], "earlier trail untouched")
					last := evs[len(evs)-1]
					assert.Equal(t, ptr(string(from)), last.FromStatus)
					assert.Equal(t, string(tc.to), last.ToStatus)
					assert.Equal(t, tc.cause(id), last.Cause)
					assert.Equal(t, tc.detail, last.Detail)
					assert.True(t, last.At.Equal(after.UpdatedAt), "event at %v, update at %v", last.At, after.UpdatedAt)

					// Repeating it, even with other arguments, is a no-op.
					for range 2 {
						require.NoError(t, tc.apply(ctx, id, 1), "repeat")
						assert.Equal(t, after, getJob(t, id), "repeat changed the job")
						assert.Equal(t, evs, events(t, id), "repeat changed the trail")
					}
				})
			}

			for _, from := range jobs.Statuses {
				if slices.Contains(tc.from, from) || from == tc.to {
					continue
				}
				t.Run("forbidden from "+string(from), func(t *testing.T) {
					id := jobIn(t, from)
					before := getJob(t, id)
					evBefore := events(t, id)
					err := tc.apply(ctx, id, 0)
					if tc.lenient {
						if err != nil {
							assert.ErrorIs(t, err, store.ErrInvalidTransition)
						}
					} else {
						require.Error(t, err)
						assert.ErrorIs(t, err, store.ErrInvalidTransition)
						assert.NotErrorIs(t, err, store.ErrNotFound)
						assert.Contains(t, err.Error(), id)
					}
					assert.Equal(t, before, getJob(t, id), "forbidden change altered the job")
					assert.Equal(t, evBefore, events(t, id), "forbidden change altered the trail")
				})
			}

			t.Run("unknown job", func(t *testing.T) {
				id := uuid.NewString()
				err := tc.apply(ctx, id, 0)
				if tc.lenient {
					if err != nil {
						assert.ErrorIs(t, err, store.ErrNotFound)
					}
				} else {
					require.Error(t, err)
					assert.ErrorIs(t, err, store.ErrNotFound)
					assert.NotErrorIs(t, err, store.ErrInvalidTransition)
				}
				_, err = st.Get(ctx, id)
				assert.ErrorIs(t, err, store.ErrNotFound)
				assert.Equal(t, 0, countRows(t, `SELECT count(*) FROM job_events WHERE job_id = $1`, id))
			})
		})
	}
}

func TestMarkCompletedTwiceKeepsFirstDownloadToken(t *testing.T) {
	ctx := t.Context()
	id := jobIn(t, jobs.StatusProcessing)
	require.NoError(t, st.MarkCompleted(ctx, completion(id, "token-one-"+id)))
	require.NoError(t, st.MarkCompleted(ctx, completion(id, "token-two-"+id)))

	job := getJob(t, id)
	require.NotNil(t, job.DownloadToken)
	assert.Equal(t, "token-one-"+id, *job.DownloadToken)
	found, err := st.GetByDownloadToken(ctx, "token-one-"+id)
	require.NoError(t, err)
	assert.Equal(t, id, found.ID)
	_, err = st.GetByDownloadToken(ctx, "token-two-"+id)
	assert.ErrorIs(t, err, store.ErrNotFound, "the second token must never be issued")
}

func TestSetCheckout(t *testing.T) {
	ctx := t.Context()
	expires := time.Now().Add(45 * time.Minute).Truncate(time.Microsecond)

	tests := []struct {
		name      string
		sessionID string
		url       string
	}{
		{"session", "cs_test_" + uuid.NewString(), "https://checkout.stripe.com/c/pay/abc"},
		{"other session", "cs_test_" + uuid.NewString(), "https://checkout.stripe.com/c/pay/def"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := jobIn(t, jobs.StatusAwaitingPayment)
			before := getJob(t, id)
			evBefore := events(t, id)

			require.NoError(t, st.SetCheckout(ctx, id, tt.sessionID, tt.url, expires))
			after := getJob(t, id)
			want := before
			want.CheckoutSessionID = ptr(tt.sessionID)
			want.CheckoutURL = ptr(tt.url)
			require.NotNil(t, after.CheckoutExpiresAt)
			assert.True(t, expires.Equal(*after.CheckoutExpiresAt), "checkout_expires_at %v, want %v", *after.CheckoutExpiresAt, expires)
			want.CheckoutExpiresAt = after.CheckoutExpiresAt
			want.UpdatedAt = after.UpdatedAt
			assert.True(t, after.UpdatedAt.After(before.UpdatedAt))
			assert.Equal(t, want, after)
			assert.Equal(t, evBefore, events(t, id), "recording the session is not a status change")

			// A retried activity records the same session again: nothing changes
			// but the time of the write.
			require.NoError(t, st.SetCheckout(ctx, id, tt.sessionID, tt.url, expires))
			again := getJob(t, id)
			again.UpdatedAt = after.UpdatedAt
			assert.Equal(t, after, again)
			assert.Equal(t, evBefore, events(t, id))
		})
	}

	t.Run("unknown job", func(t *testing.T) {
		id := uuid.NewString()
		err := st.SetCheckout(ctx, id, "cs_x", "https://checkout.stripe.com/x", expires)
		require.Error(t, err)
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = st.Get(ctx, id)
		assert.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestConcurrentMarkPaid(t *testing.T) {
	ctx := t.Context()
	id := jobIn(t, jobs.StatusAwaitingPayment)

	const n = 20
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			p := payment(id)
			p.Cause = fmt.Sprintf("evt_%d", i)
			errs[i] = st.MarkPaid(ctx, p)
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		assert.NoError(t, err, "goroutine %d", i)
	}
	evs := events(t, id)
	require.Len(t, evs, 2, "created + exactly one payment")
	assert.Equal(t, string(jobs.StatusPending), evs[1].ToStatus)
	assert.Equal(t, ptr(string(jobs.StatusAwaitingPayment)), evs[1].FromStatus)
	assert.Regexp(t, `^evt_\d+$`, evs[1].Cause)
	assert.Equal(t, 1, countRows(t, `SELECT count(*) FROM job_events WHERE job_id = $1 AND to_status = 'pending'`, id))
	job := getJob(t, id)
	assert.Equal(t, jobs.StatusPending, job.Status)
	assert.Equal(t, jobs.PaymentPaid, job.PaymentStatus)
}

// ---------------------------------------------------------------------------
// List

func TestList(t *testing.T) {
	ctx := t.Context()
	s, dbURL := newDatabase(t) // an empty database: List sees only these jobs
	raw, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(raw.Close)

	// Eight jobs, in statuses s[i], created a minute apart (job 0 oldest);
	// updated in another order so that the two orderings differ.
	statuses := []jobs.Status{
		jobs.StatusAwaitingPayment, jobs.StatusPending, jobs.StatusProcessing, jobs.StatusCompleted,
		jobs.StatusFailed, jobs.StatusAbandoned, jobs.StatusPending, jobs.StatusAwaitingPayment,
	}
	updatedOrder := []int{3, 6, 0, 7, 1, 5, 2, 4} // updatedOrder[k] is the k-th to be updated
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	ids := make([]string, len(statuses))
	for i, status := range statuses {
		n := newJobInput()
		job, created, err := s.CreateJob(ctx, n)
		require.NoError(t, err)
		require.True(t, created)
		ids[i] = job.ID
		_, err = raw.Exec(ctx, `UPDATE jobs SET status = $2, created_at = $3 WHERE id = $1`,
			job.ID, status, base.Add(time.Duration(i)*time.Minute))
		require.NoError(t, err)
	}
	for k, i := range updatedOrder {
		_, err := raw.Exec(ctx, `UPDATE jobs SET updated_at = $2 WHERE id = $1`,
			ids[i], base.Add(time.Hour+time.Duration(k)*time.Second))
		require.NoError(t, err)
	}
	// pick returns the IDs of jobs idx.
	pick := func(idx ...int) []string {
		out := make([]string, len(idx))
		for k, i := range idx {
			out[k] = ids[i]
		}
		return out
	}
	byUpdatedNewest := func() []string {
		out := make([]string, 0, len(updatedOrder))
		for k := len(updatedOrder) - 1; k >= 0; k-- {
			out = append(out, ids[updatedOrder[k]])
		}
		return out
	}

	tests := []struct {
		name string
		f    store.ListFilter
		want []string
	}{
		{"all, newest first", store.ListFilter{Limit: 100}, pick(7, 6, 5, 4, 3, 2, 1, 0)},
		{"explicit created_at", store.ListFilter{Limit: 100, OrderBy: "created_at"}, pick(7, 6, 5, 4, 3, 2, 1, 0)},
		{"unknown order falls back to created_at", store.ListFilter{Limit: 100, OrderBy: "id; DROP TABLE jobs"}, pick(7, 6, 5, 4, 3, 2, 1, 0)},
		{"updated_at", store.ListFilter{Limit: 100, OrderBy: "updated_at"}, byUpdatedNewest()},
		{"limit", store.ListFilter{Limit: 3}, pick(7, 6, 5)},
		{"limit with updated_at", store.ListFilter{Limit: 2, OrderBy: "updated_at"}, pick(4, 2)},
		{"one status", store.ListFilter{Limit: 100, Statuses: []jobs.Status{jobs.StatusPending}}, pick(6, 1)},
		{"two statuses", store.ListFilter{Limit: 100, Statuses: []jobs.Status{jobs.StatusAwaitingPayment, jobs.StatusFailed}}, pick(7, 4, 0)},
		{"status with limit", store.ListFilter{Limit: 1, Statuses: []jobs.Status{jobs.StatusAwaitingPayment}}, pick(7)},
		{"status nobody has", store.ListFilter{Limit: 100, Statuses: []jobs.Status{"refunded"}}, pick()},
		{"after is exclusive", store.ListFilter{Limit: 100, After: before(base.Add(3 * time.Minute))}, pick(2, 1, 0)},
		{"after with status", store.ListFilter{Limit: 100, After: before(base.Add(7 * time.Minute)), Statuses: []jobs.Status{jobs.StatusAwaitingPayment}}, pick(0)},
		{"after on updated_at", store.ListFilter{Limit: 100, OrderBy: "updated_at", After: before(base.Add(time.Hour + 2*time.Second))}, pick(6, 3)},
		{"after the first job", store.ListFilter{Limit: 100, After: before(base)}, pick()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := s.List(ctx, tt.f)
			require.NoError(t, err)
			got := make([]string, len(list))
			for k, j := range list {
				got[k] = j.ID
				if len(tt.f.Statuses) > 0 {
					assert.Contains(t, tt.f.Statuses, j.Status)
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}

	t.Run("rows are complete jobs", func(t *testing.T) {
		list, err := s.List(ctx, store.ListFilter{Limit: 1})
		require.NoError(t, err)
		require.Len(t, list, 1)
		one, err := s.Get(ctx, ids[7])
		require.NoError(t, err)
		assert.Equal(t, one, list[0])
	})

	// Paging as the admin API does: the next page starts before the last row.
	for _, order := range store.ListOrderColumns {
		for _, limit := range []int{1, 3, 5, 8, 9} {
			t.Run(fmt.Sprintf("pages by %s of %d", order, limit), func(t *testing.T) {
				var seen []string
				var after *store.Cursor
				for page := 0; ; page++ {
					require.Less(t, page, 20, "paging does not end")
					list, err := s.List(ctx, store.ListFilter{Limit: limit, OrderBy: order, After: after})
					require.NoError(t, err)
					require.LessOrEqual(t, len(list), limit)
					for _, j := range list {
						require.NotContains(t, seen, j.ID, "pages overlap")
						seen = append(seen, j.ID)
					}
					if len(list) < limit {
						break
					}
					cur := store.CursorOf(list[len(list)-1], order)
					after = &cur
				}
				want := pick(7, 6, 5, 4, 3, 2, 1, 0)
				if order == "updated_at" {
					want = byUpdatedNewest()
				}
				assert.Equal(t, want, seen, "pages together are the whole list, in order")
			})
		}
	}
}

// Jobs created in the same instant are neither skipped nor repeated across pages.
func TestListPagesThroughTiedTimestamps(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2031, 5, 5, 5, 5, 5, 0, time.UTC) // later than any other test's jobs
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		n := newJobInput()
		_, _, err := st.CreateJob(ctx, n)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `UPDATE jobs SET created_at = $2 WHERE id = $1`, n.ID, at)
		require.NoError(t, err)
		want[n.ID] = true
	}
	got := map[string]bool{}
	var after *store.Cursor
	for page := 0; page < 10; page++ {
		list, err := st.List(ctx, store.ListFilter{Limit: 2, After: after})
		require.NoError(t, err)
		for _, j := range list {
			if j.CreatedAt.Equal(at) {
				require.False(t, got[j.ID], "repeated")
				got[j.ID] = true
			}
		}
		if len(list) < 2 || !list[len(list)-1].CreatedAt.Equal(at) {
			break
		}
		cur := store.CursorOf(list[len(list)-1], "created_at")
		after = &cur
	}
	require.Equal(t, want, got)
}

// ---------------------------------------------------------------------------
// Events, download tokens, Stripe events

func TestEvents(t *testing.T) {
	ctx := t.Context()

	type ev struct {
		from, to, cause string
		detail          *string
	}
	tests := []struct {
		name  string
		drive func(t *testing.T, id string)
		want  []ev
	}{
		{
			name:  "just created",
			drive: func(*testing.T, string) {},
			want:  []ev{{"", "awaiting_payment", "created", nil}},
		},
		{
			name: "delivered and expired",
			drive: func(t *testing.T, id string) {
				require.NoError(t, st.MarkPaid(ctx, payment(id)))
				require.NoError(t, st.MarkProcessing(ctx, id, "u1"))
				require.NoError(t, st.MarkProcessing(ctx, id, "u1")) // repeats leave no trace
				c := completion(id, "tok-"+id)
				c.UpsamplerJobID = "u1"
				require.NoError(t, st.MarkCompleted(ctx, c))
				require.NoError(t, st.MarkDownloadExpired(ctx, id))
				require.NoError(t, st.MarkDownloadExpired(ctx, id))
			},
			want: []ev{
				{"", "awaiting_payment", "created", nil},
				{"awaiting_payment", "pending", "evt_", nil}, // cause prefixed with the job ID below
				{"pending", "processing", "upsampler:u1", nil},
				{"processing", "completed", "upsampler:u1", nil},
				{"completed", "completed", "download_expired", nil},
			},
		},
		{
			name: "failed with detail",
			drive: func(t *testing.T, id string) {
				require.NoError(t, st.MarkPaid(ctx, payment(id)))
				require.NoError(t, st.MarkFailed(ctx, id, jobs.ReasonUpsamplerSubmitErr, "HTTP 400"))
				require.ErrorIs(t, st.MarkProcessing(ctx, id, "late"), store.ErrInvalidTransition)
			},
			want: []ev{
				{"", "awaiting_payment", "created", nil},
				{"awaiting_payment", "pending", "evt_", nil},
				{"pending", "failed", jobs.ReasonUpsamplerSubmitErr, ptr("HTTP 400")},
			},
		},
		{
			name: "abandoned",
			drive: func(t *testing.T, id string) {
				require.NoError(t, st.MarkAbandoned(ctx, id, "payment_timeout", jobs.PaymentExpired))
				require.ErrorIs(t, st.MarkPaid(ctx, payment(id)), store.ErrInvalidTransition)
			},
			want: []ev{
				{"", "awaiting_payment", "created", nil},
				{"awaiting_payment", "abandoned", "payment_timeout", nil},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := createJob(t, newJobInput()).ID
			tt.drive(t, id)
			evs := events(t, id)
			require.Len(t, evs, len(tt.want))
			for i, w := range tt.want {
				e := evs[i]
				assert.Equal(t, id, e.JobID)
				if w.from == "" {
					assert.Nil(t, e.FromStatus, "event %d", i)
				} else {
					assert.Equal(t, ptr(w.from), e.FromStatus, "event %d", i)
				}
				assert.Equal(t, w.to, e.ToStatus, "event %d", i)
				cause := w.cause
				if cause == "evt_" {
					cause += id
				}
				assert.Equal(t, cause, e.Cause, "event %d", i)
				assert.Equal(t, w.detail, e.Detail, "event %d", i)
				if i > 0 {
					assert.Greater(t, e.ID, evs[i-1].ID, "event %d out of order", i)
					assert.False(t, e.At.Before(evs[i-1].At), "event %d earlier than the one before", i)
				}
			}
		})
	}

	t.Run("unknown job has an empty trail", func(t *testing.T) {
		evs, err := st.Events(ctx, uuid.NewString())
		require.NoError(t, err)
		assert.Empty(t, evs)
	})
}

func sha256Of(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func TestGetByDownloadToken(t *testing.T) {
	ctx := t.Context()
	idA := jobIn(t, jobs.StatusProcessing)
	idB := jobIn(t, jobs.StatusProcessing)
	tokA, tokB := "dl-a-"+uuid.NewString(), "dl-b-"+uuid.NewString()
	require.NoError(t, st.MarkCompleted(ctx, completion(idA, tokA)))
	require.NoError(t, st.MarkCompleted(ctx, completion(idB, tokB)))

	tests := []struct {
		name    string
		token   string
		wantID  string
		wantErr error
	}{
		{"first job", tokA, idA, nil},
		{"second job", tokB, idB, nil},
		{"unknown token", "dl-" + uuid.NewString(), "", store.ErrNotFound},
		{"empty token", "", "", store.ErrNotFound},
		{"prefix of a token", tokA[:10], "", store.ErrNotFound},
		{"token in another case", strings.ToUpper(tokA), "", store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := st.GetByDownloadToken(ctx, tt.token)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantID, job.ID)
			assert.Equal(t, getJob(t, tt.wantID), job)
		})
	}

	// Tokens are unique in the database.
	idC := jobIn(t, jobs.StatusProcessing)
	err := st.MarkCompleted(ctx, completion(idC, tokA))
	require.Error(t, err)
	assert.Equal(t, "23505", pgCode(err), "got %v", err)
	assert.Equal(t, jobs.StatusProcessing, getJob(t, idC).Status, "the failed completion rolled back")
	assert.Len(t, events(t, idC), 3)
}

func TestStripeEvents(t *testing.T) {
	ctx := t.Context()
	jobID := jobIn(t, jobs.StatusAwaitingPayment)

	tests := []struct {
		name  string
		jobID string
	}{
		{"with job", jobID},
		{"without job", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eventID := "evt_" + uuid.NewString()
			seen, err := st.StripeEventSeen(ctx, eventID)
			require.NoError(t, err)
			assert.False(t, seen)

			first, err := st.RecordStripeEvent(ctx, eventID, jobs.EventCheckoutCompleted, tt.jobID, "signalled")
			require.NoError(t, err)
			assert.True(t, first)

			seen, err = st.StripeEventSeen(ctx, eventID)
			require.NoError(t, err)
			assert.True(t, seen)

			for range 2 {
				again, err := st.RecordStripeEvent(ctx, eventID, jobs.EventCheckoutExpired, tt.jobID, "other")
				require.NoError(t, err)
				assert.False(t, again)
			}

			var typ, outcome string
			var storedJob *string
			require.NoError(t, pool.QueryRow(ctx, `SELECT type, outcome, job_id::text FROM stripe_events WHERE event_id = $1`,
				eventID).Scan(&typ, &outcome, &storedJob))
			assert.Equal(t, jobs.EventCheckoutCompleted, typ, "the first record is kept")
			assert.Equal(t, "signalled", outcome)
			if tt.jobID == "" {
				assert.Nil(t, storedJob)
			} else {
				assert.Equal(t, ptr(tt.jobID), storedJob)
			}
		})
	}

	t.Run("concurrent deliveries record once", func(t *testing.T) {
		eventID := "evt_" + uuid.NewString()
		const n = 10
		results := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i], errs[i] = st.RecordStripeEvent(ctx, eventID, "t", "", "o") })
		}
		wg.Wait()
		firsts := 0
		for i := range n {
			require.NoError(t, errs[i])
			if results[i] {
				firsts++
			}
		}
		assert.Equal(t, 1, firsts)
	})

	t.Run("event IDs are distinct", func(t *testing.T) {
		a, b := "evt_"+uuid.NewString(), "evt_"+uuid.NewString()
		ok, err := st.RecordStripeEvent(ctx, a, "t", "", "o")
		require.NoError(t, err)
		require.True(t, ok)
		seen, err := st.StripeEventSeen(ctx, b)
		require.NoError(t, err)
		assert.False(t, seen)
	})
}
