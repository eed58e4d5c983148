//go:build integration

package mail_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/dev/devstack"
	"hires/internal/mail"
)

const (
	fromAddr  = "images@hires.test"
	adminAddr = "admin@example.test"
	custAddr  = "customer@example.test"
	password  = "mailpit-takes-any-password"
)

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// startMailpit runs a mailpit that refuses recipients outside example.test
// with 550, and a Mailer sending to it with credentials.
func startMailpit(t *testing.T) (*devstack.Mailpit, *mail.Mailer) {
	t.Helper()
	if _, err := devstack.ToolPath("mailpit"); err != nil {
		t.Skipf("mailpit absent: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mp, err := devstack.StartMailpit(ctx, devstack.MailpitOptions{
		SMTPAllowedRecipients: `@example\.test$`,
		Output:                logWriter{t},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = mp.Stop() })
	m, err := mail.New(mail.Config{
		Host: mp.SMTPHost, Port: mp.SMTPPort, TLS: "none",
		Username: "hires", Password: password,
		From: "Hi-res Images <" + fromAddr + ">", AdminCopy: adminAddr,
	})
	require.NoError(t, err)
	return mp, m
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// byRecipient reads every stored message, keyed by its first To address.
func byRecipient(t *testing.T, mp *devstack.Mailpit) map[string]devstack.MailpitMessageDetail {
	t.Helper()
	ctx := ctxT(t)
	list, err := mp.Messages(ctx)
	require.NoError(t, err)
	out := map[string]devstack.MailpitMessageDetail{}
	for _, s := range list {
		d, err := mp.Message(ctx, s.ID)
		require.NoError(t, err)
		require.Len(t, d.To, 1)
		_, dup := out[d.To[0].Address]
		require.False(t, dup, "one message per recipient")
		out[d.To[0].Address] = d
	}
	return out
}

var expiry = time.Date(2026, 11, 27, 21, 37, 0, 0, time.UTC)

func data() mail.MessageData {
	return mail.MessageData{
		JobURL:       "https://img.example.test/jobs/0b6f2c1e",
		DownloadURL:  "https://img.example.test/v1/downloads/Tok3nAbc",
		ExpiresAt:    expiry,
		Resolution:   "8x",
		OutputWidth:  32000,
		OutputHeight: 24000,
		AmountCents:  384,
		Currency:     "usd",
		Reason:       "result_invalid",
		SiteName:     "Hi-res Images",
	}
}

func TestMailpitSendEachKind(t *testing.T) {
	mp, m := startMailpit(t)
	tests := []struct {
		kind     mail.Kind
		facts    []string // in both the text and the HTML part
		htmlOnly []string
	}{
		{mail.KindPaymentReceived, []string{"USD 3.84", "8x", "https://img.example.test/jobs/0b6f2c1e"},
			[]string{`href="https://img.example.test/jobs/0b6f2c1e"`}},
		{mail.KindImageReady, []string{"https://img.example.test/v1/downloads/Tok3nAbc", "Fri 27 Nov 2026 21:37 UTC", "8x", "32000 × 24000 px"},
			[]string{`href="https://img.example.test/v1/downloads/Tok3nAbc"`, "Download your image</a>"}},
		{mail.KindExpiringSoon, []string{"https://img.example.test/v1/downloads/Tok3nAbc", "Fri 27 Nov 2026 21:37 UTC"},
			[]string{`href="https://img.example.test/v1/downloads/Tok3nAbc"`}},
		{mail.KindFailedRefunded, []string{"USD 3.84", "damaged or incomplete"}, nil},
		{mail.KindPaymentProcessing, []string{"USD 3.84", "8x", "bank debit", "https://img.example.test/jobs/0b6f2c1e"},
			[]string{`href="https://img.example.test/jobs/0b6f2c1e"`}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			ctx := ctxT(t)
			require.NoError(t, mp.DeleteAll(ctx))
			msg := mail.Message{Kind: tt.kind, JobID: "0b6f2c1e", To: "Customer <" + custAddr + ">", Data: data()}
			subject, _, _, err := mail.Render(msg)
			require.NoError(t, err)

			require.NoError(t, m.Send(ctx, msg))

			got := byRecipient(t, mp)
			require.Len(t, got, 2, "the customer's email and the admin copy")
			for _, c := range []struct {
				addr, subject, role string
			}{
				{custAddr, subject, "customer"},
				{adminAddr, "Copy: " + subject, "admin"},
			} {
				d, ok := got[c.addr]
				require.True(t, ok, "message to %s", c.addr)
				assert.Equal(t, fromAddr, d.From.Address)
				assert.Equal(t, "Hi-res Images", d.From.Name)
				assert.Equal(t, c.subject, d.Subject)
				assert.Equal(t, "job-0b6f2c1e-"+string(tt.kind)+"-"+c.role+"@hires.test", d.MessageID)
				assert.Equal(t, []string{"0b6f2c1e"}, d.Headers["X-Hires-Job"])
				assert.Equal(t, []string{string(tt.kind)}, d.Headers["X-Hires-Kind"])
				assert.Equal(t, []string{"auto-generated"}, d.Headers["Auto-Submitted"])
				require.NotEmpty(t, d.Headers["Content-Type"])
				assert.Contains(t, d.Headers["Content-Type"][0], "multipart/alternative")
				assert.Equal(t, "hires", d.Username, "sent authenticated")
				for _, f := range tt.facts {
					assert.Contains(t, d.Text, f, "text part to %s", c.addr)
					assert.Contains(t, d.HTML, f, "html part to %s", c.addr)
				}
				for _, f := range tt.htmlOnly {
					assert.Contains(t, d.HTML, f, "html part to %s", c.addr)
				}
				assert.NotContains(t, d.Text, "<p", "text part is plain text")
				assert.NotContains(t, d.Text+d.HTML, "result_invalid", "no machine reason")
				for _, vals := range d.Headers {
					for _, v := range vals {
						assert.NotContains(t, v, password)
					}
				}
			}
			assert.Contains(t, got[adminAddr].Text, "Copy of the email to the customer at Customer <"+custAddr+">")
			assert.NotContains(t, got[custAddr].Text, "Copy of the email")
		})
	}
}

func TestMailpitResendKeepsMessageID(t *testing.T) {
	mp, m := startMailpit(t)
	ctx := ctxT(t)
	msg := mail.Message{Kind: mail.KindImageReady, JobID: "j-1", To: custAddr, Data: data()}
	require.NoError(t, m.Send(ctx, msg)) // a crash after this point...
	require.NoError(t, m.Send(ctx, msg)) // ...means the activity sends again
	msg.Seq = 1                          // an admin's deliberate resend
	require.NoError(t, m.Send(ctx, msg))

	list, err := mp.Messages(ctx)
	require.NoError(t, err)
	count := map[string]int{}
	for _, s := range list {
		count[s.MessageID]++
	}
	assert.Equal(t, map[string]int{
		"job-j-1-image-ready-customer@hires.test":   2,
		"job-j-1-image-ready-admin@hires.test":      2,
		"job-j-1-image-ready-1-customer@hires.test": 1,
		"job-j-1-image-ready-1-admin@hires.test":    1,
	}, count)
}

func TestMailpitCopyWithoutCustomerAddress(t *testing.T) {
	mp, m := startMailpit(t)
	ctx := ctxT(t)
	require.NoError(t, m.Send(ctx, mail.Message{Kind: mail.KindFailedRefunded, JobID: "j-2", Data: data()}))
	got := byRecipient(t, mp)
	require.Len(t, got, 1)
	d := got[adminAddr]
	assert.True(t, strings.HasPrefix(d.Subject, "Copy: "), d.Subject)
	assert.Contains(t, d.Text, "gave no email address")
	assert.Contains(t, d.HTML, "gave no email address")
	assert.Equal(t, "job-j-2-failed-refunded-admin@hires.test", d.MessageID)
}

func TestMailpitPermanentFailures(t *testing.T) {
	mp, m := startMailpit(t)
	tests := []struct {
		name, to string
		wantIs   error
		wantText string
	}{
		{name: "recipient refused with 550", to: "someone@rejected.test", wantText: "550"},
		{name: "invalid recipient address", to: "not an address", wantIs: mail.ErrInvalidRecipient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			require.NoError(t, mp.DeleteAll(ctx))
			err := m.Send(ctx, mail.Message{Kind: mail.KindImageReady, JobID: "j-3", To: tt.to, Data: data()})
			require.Error(t, err)
			t.Log(err)
			assert.True(t, mail.Permanent(err), "retrying cannot help")
			if tt.wantIs != nil {
				assert.True(t, errors.Is(err, tt.wantIs))
			}
			assert.ErrorContains(t, err, tt.wantText)
			assert.NotContains(t, err.Error(), password)

			got := byRecipient(t, mp)
			require.Len(t, got, 1, "the admin copy still goes out")
			assert.Contains(t, got, adminAddr)
		})
	}
}

func TestMailpitStoppedIsTemporary(t *testing.T) {
	mp, m := startMailpit(t)
	require.NoError(t, mp.Stop())
	err := m.Send(ctxT(t), mail.Message{Kind: mail.KindImageReady, JobID: "j-4", To: custAddr, Data: data()})
	require.Error(t, err)
	assert.False(t, mail.Permanent(err), "the server may come back: retry")
}

func TestMailpitAdminOnly(t *testing.T) {
	mp, m := startMailpit(t)
	ctx := ctxT(t)
	d := data()
	d.Detail = "Charge ch_9 has been disputed <b>hostile</b>"
	msg := mail.Message{Kind: mail.KindRefundAttention, JobID: "j-5", To: custAddr, AdminOnly: true, Data: d}
	subject, _, _, err := mail.Render(msg)
	require.NoError(t, err)
	require.NoError(t, m.Send(ctx, msg))
	require.NoError(t, m.Send(ctx, msg)) // a retry carries the same Message-ID

	list, err := mp.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, s := range list {
		d, err := mp.Message(ctx, s.ID)
		require.NoError(t, err)
		require.Len(t, d.To, 1)
		assert.Equal(t, adminAddr, d.To[0].Address, "to the admin only")
		assert.Equal(t, subject, d.Subject, "no Copy: prefix")
		assert.Equal(t, "job-j-5-refund-needs-attention-admin@hires.test", d.MessageID)
		assert.Contains(t, d.Text, "Charge ch_9 has been disputed <b>hostile</b>")
		assert.Contains(t, d.HTML, "Charge ch_9 has been disputed &lt;b&gt;hostile&lt;/b&gt;")
		assert.Contains(t, d.Text, "POST /v1/admin/jobs/j-5/refund-settled")
		assert.NotContains(t, d.Text, "Copy")
		assert.NotContains(t, d.Text, "Hello")
	}
}
