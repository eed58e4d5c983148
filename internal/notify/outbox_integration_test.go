//go:build integration

package notify

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/dev/devstack"
	"hires/internal/events"
	"hires/internal/mail"
	"hires/internal/store"
	"hires/internal/token"
)

// The outbox end to end: the job record's changes write their messages in
// their own transaction, and the dispatcher delivers each once, retries the
// ones that fail, holds a reminder until it is due and drops it once the
// customer has downloaded, and gives up on a target that refuses for good.
func TestDispatcherDeliversTheOutbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, pg.Stop()) })
	mp, err := devstack.StartMailpit(ctx, devstack.MailpitOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, mp.Stop()) })
	st, err := store.OpenMigrated(ctx, pg.URL)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	mailer, err := mail.New(mail.Config{Host: mp.SMTPHost, Port: mp.SMTPPort, TLS: mail.TLSNone, From: "Hi-res <images@example.com>"})
	require.NoError(t, err)

	busyOnce := newHookReceiver(t, http.StatusServiceUnavailable, http.StatusNoContent)
	_, err = st.CreateEndpoint(ctx, store.NewEndpoint{URL: busyOnce.URL, Types: []events.Type{events.JobCreated, events.PaymentCompleted},
		Secret: events.NewSecret()})
	require.NoError(t, err)

	id := newJob(t, st)

	disp := &Dispatcher{
		Store: st, Wake: st.ListenOutbox(), Mailer: mailer, Events: events.NewSender(nil),
		PublicBaseURL: "https://hires.example.com", AccessSecret: []byte("access-secret-for-tests-0123456789"),
		Poll: 200 * time.Millisecond, Batch: 10, Parallel: 4, Lease: time.Minute,
		GiveUpAfter: time.Hour, FirstRetry: 300 * time.Millisecond, MaxRetry: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); disp.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	// The job can be paid for (job.created), then is paid (an email and payment.completed).
	require.NoError(t, st.SetCheckout(ctx, id, "cs_"+id, "https://checkout.stripe.com/c/pay/cs_"+id, time.Now().Add(time.Hour)))
	require.NoError(t, st.SetCheckout(ctx, id, "cs_"+id, "https://checkout.stripe.com/c/pay/cs_"+id, time.Now().Add(time.Hour)))
	require.NoError(t, st.MarkPaid(ctx, store.Payment{JobID: id, Cause: "evt_1", PaymentIntentID: "pi_1", AmountCents: 384, Currency: "usd"}))
	require.NoError(t, st.MarkPaid(ctx, store.Payment{JobID: id, Cause: "evt_1", PaymentIntentID: "pi_1", AmountCents: 384, Currency: "usd"}))

	sent := func(key string) bool {
		ok, err := st.Sent(ctx, id, key)
		require.NoError(t, err)
		return ok
	}
	require.Eventually(t, func() bool {
		return sent("event:job.created:0") && sent("event:payment.completed:0") && sent("email:payment-received:0")
	}, 30*time.Second, 100*time.Millisecond, "every message delivered, the 503 retried")
	reqs, _ := busyOnce.requests()
	require.Len(t, reqs, 3, "job.created after one 503, payment.completed at once; repeated changes send nothing more")
	msgs, err := mp.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 1, "one payment email")

	// Completed with a reminder due shortly; a download before then drops it.
	require.NoError(t, st.MarkProcessing(ctx, id, "up_1"))
	remind := time.Now().Add(4 * time.Second)
	require.NoError(t, st.MarkCompleted(ctx, store.Completion{JobID: id, UpsamplerJobID: "up_1", ResultKey: "results/x.png",
		ContentType: "image/png", Bytes: 1, SHA256: "x", Width: 2560, Height: 1920, DownloadToken: token.Alnum(token.DownloadLength),
		DownloadExpiresAt: time.Now().Add(time.Hour), RemindAt: remind}))
	require.Eventually(t, func() bool { return sent("email:image-ready:0") }, 30*time.Second, 100*time.Millisecond)
	require.False(t, sent("email:expiring-soon:0"), "not before it is due")
	require.NoError(t, st.MarkDownloaded(ctx, id))
	time.Sleep(time.Until(remind) + time.Second)
	require.Eventually(t, func() bool {
		var reason *string
		err := pgxRow(ctx, pg.URL, `SELECT last_error FROM outbox WHERE job_id = $1 AND key = 'email:expiring-soon:0' AND done_at IS NOT NULL`, id, &reason)
		return err == nil && reason != nil
	}, 30*time.Second, 200*time.Millisecond, "the reminder is dropped once the image was downloaded")
	msgs, err = mp.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 2, "the link, and no reminder")
}

// pgxRow scans one row of query into dest, on a connection of its own.
func pgxRow(ctx context.Context, url, query string, arg any, dest any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, query, arg).Scan(dest)
}
