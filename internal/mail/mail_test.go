package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const secret = "pa55-w0rd-do-not-leak"

func TestNew(t *testing.T) {
	valid := Config{Host: "smtp.example.com", Port: 587, Username: "u", Password: secret, TLS: "starttls", From: "Hi-res <images@example.com>", AdminCopy: "admin@example.com"}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "valid"},
		{name: "tls upper case", edit: func(c *Config) { c.TLS = "TLS" }},
		{name: "tls empty means starttls", edit: func(c *Config) { c.TLS = "" }},
		{name: "no credentials", edit: func(c *Config) { c.Username, c.Password = "", "" }},
		{name: "no admin copy", edit: func(c *Config) { c.AdminCopy = "" }},
		{name: "port defaults", edit: func(c *Config) { c.Port = 0 }},
		{name: "none to loopback with credentials", edit: func(c *Config) { c.TLS, c.Host = "none", "127.0.0.1" }},
		{name: "bad tls", edit: func(c *Config) { c.TLS = "ssl" }, wantErr: "TLS mode must be"},
		{name: "bad port", edit: func(c *Config) { c.Port = 70000 }, wantErr: "port"},
		{name: "bad from", edit: func(c *Config) { c.From = "images" }, wantErr: "sender (From)"},
		{name: "empty from", edit: func(c *Config) { c.From = "" }, wantErr: "sender (From)"},
		{name: "bad admin", edit: func(c *Config) { c.AdminCopy = "admin@" }, wantErr: "admin copy"},
		{name: "password without user", edit: func(c *Config) { c.Username = "" }, wantErr: "without a username"},
		{name: "cleartext credentials to remote host", edit: func(c *Config) { c.TLS = "none" }, wantErr: "unencrypted"},
		{name: "host with path", edit: func(c *Config) { c.Host = "smtp.example.com/x" }, wantErr: "not a host name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			if tt.edit != nil {
				tt.edit(&cfg)
			}
			m, err := New(cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, m)
				assert.NotContains(t, err.Error(), secret)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, m)
		})
	}
}

func TestNewDisabled(t *testing.T) {
	m, err := New(Config{Host: "  ", From: "not even valid", Password: secret})
	require.ErrorIs(t, err, ErrDisabled)
	assert.Nil(t, m)

	// A nil Mailer is "off" too, and that is not worth retrying.
	err = m.Send(context.Background(), Message{Kind: KindImageReady, JobID: "j"})
	require.ErrorIs(t, err, ErrDisabled)
	assert.True(t, Permanent(err))
}

func TestConfigNeverPrintsPassword(t *testing.T) {
	cfg := Config{Host: "h", Username: "u", Password: secret, From: "a@b"}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), fmt.Sprint(&cfg)} {
		assert.NotContains(t, s, secret)
		assert.Contains(t, s, "[redacted]")
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("mail", "config", cfg)
	assert.NotContains(t, buf.String(), secret)
	assert.Contains(t, buf.String(), `"password_set":true`)
}

func TestMessageID(t *testing.T) {
	m, err := New(Config{Host: "h", From: "Hi-res <images@Mail.Example.com>"})
	require.NoError(t, err)
	msg := Message{Kind: KindImageReady, JobID: "0b6f2c1e-9d1a-4c55-b3a8-1f2e3d4c5b6a"}
	id := m.MessageID(msg, false)
	assert.Equal(t, "<job-0b6f2c1e-9d1a-4c55-b3a8-1f2e3d4c5b6a-image-ready-customer@mail.example.com>", id)
	assert.Equal(t, id, m.MessageID(msg, false), "deterministic")
	assert.Equal(t, "<job-0b6f2c1e-9d1a-4c55-b3a8-1f2e3d4c5b6a-image-ready-admin@mail.example.com>", m.MessageID(msg, true))
	msg.Seq = 2
	assert.Equal(t, "<job-0b6f2c1e-9d1a-4c55-b3a8-1f2e3d4c5b6a-image-ready-2-customer@mail.example.com>", m.MessageID(msg, false))

	// Odd job IDs stay distinct and valid.
	a := m.MessageID(Message{Kind: KindImageReady, JobID: "a b"}, false)
	b := m.MessageID(Message{Kind: KindImageReady, JobID: "a_b"}, false)
	assert.NotEqual(t, a, b)
	assert.Equal(t, "<job-a=20b-image-ready-customer@mail.example.com>", a)
	assert.NotContains(t, m.MessageID(Message{Kind: KindImageReady, JobID: "x>\r\ny@z"}, false), "\n")

	m2, err := New(Config{Host: "h", From: `"weird" <a@[127.0.0.1]>`})
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(m2.MessageID(msg, false), "@hires>"), "falls back to @hires")
}

func newTestMailer(t *testing.T, f *fakeSMTP, edit func(*Config)) *Mailer {
	t.Helper()
	cfg := Config{
		Host: "127.0.0.1", Port: f.Addr.Port, TLS: "none",
		From: "Hi-res <images@hires.test>", AdminCopy: "admin@hires.test",
	}
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(cfg)
	require.NoError(t, err)
	return m
}

func readyMsg(to string) Message {
	return Message{Kind: KindImageReady, JobID: "job42", To: to, Data: testData()}
}

func TestSendHeadersAndCopy(t *testing.T) {
	f := startFakeSMTP(t, nil)
	m := newTestMailer(t, f, nil)
	require.NoError(t, m.Send(context.Background(), readyMsg("Customer <customer@example.test>")))

	got := f.Received()
	require.Len(t, got, 2)
	cust, admin := got[0], got[1]
	assert.Equal(t, []string{"customer@example.test"}, cust.To)
	assert.Equal(t, []string{"admin@hires.test"}, admin.To)
	for _, want := range []string{
		"Message-ID: <job-job42-image-ready-customer@hires.test>",
		"X-Hires-Job: job42",
		"X-Hires-Kind: image-ready",
		"Auto-Submitted: auto-generated",
		"Subject: Your high-resolution image is ready - Hi-res Images",
		"multipart/alternative",
		"text/plain",
		"text/html",
	} {
		assert.Contains(t, cust.Data, want)
	}
	assert.Contains(t, admin.Data, "Message-ID: <job-job42-image-ready-admin@hires.test>")
	assert.Contains(t, admin.Data, "Subject: Copy: Your high-resolution image is ready")
	assert.NotContains(t, cust.Data, "go-mail", "no library advertisement")
}

func TestSendRecipients(t *testing.T) {
	tests := []struct {
		name      string
		to        string
		admin     string
		wantTo    [][]string
		wantErrIs error
	}{
		{name: "customer and copy", to: "c@example.test", admin: "admin@hires.test", wantTo: [][]string{{"c@example.test"}, {"admin@hires.test"}}},
		{name: "no customer address: copy only", to: "", admin: "admin@hires.test", wantTo: [][]string{{"admin@hires.test"}}},
		{name: "admin is the customer: one email", to: "Admin <ADMIN@hires.test>", admin: "admin@hires.test", wantTo: [][]string{{"ADMIN@hires.test"}}},
		{name: "no admin copy", to: "c@example.test", wantTo: [][]string{{"c@example.test"}}},
		{name: "nothing to send", to: "", wantTo: nil},
		{name: "invalid customer address: copy still sent", to: "not an address", admin: "admin@hires.test", wantTo: [][]string{{"admin@hires.test"}}, wantErrIs: ErrInvalidRecipient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeSMTP(t, nil)
			m := newTestMailer(t, f, func(c *Config) { c.AdminCopy = tt.admin })
			err := m.Send(context.Background(), readyMsg(tt.to))
			if tt.wantErrIs != nil {
				require.ErrorIs(t, err, tt.wantErrIs)
				assert.True(t, Permanent(err))
			} else {
				require.NoError(t, err)
			}
			var gotTo [][]string
			for _, r := range f.Received() {
				gotTo = append(gotTo, r.To)
			}
			assert.Equal(t, tt.wantTo, gotTo)
		})
	}
}

func TestSendAdminCopyNote(t *testing.T) {
	f := startFakeSMTP(t, nil)
	m := newTestMailer(t, f, nil)
	require.NoError(t, m.Send(context.Background(), readyMsg("")))
	got := f.Received()
	require.Len(t, got, 1)
	assert.Contains(t, got[0].Data, "gave no email address")
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name          string
		server        func(*fakeSMTP)
		cfg           func(*Config)
		wantPermanent bool
		wantText      string
		wantDelivered int
	}{
		{name: "recipient refused 550", server: func(f *fakeSMTP) { f.Rcpt = map[string]string{"c@example.test": "550 5.1.1 no such user"} },
			wantPermanent: true, wantText: "no such user", wantDelivered: 1},
		{name: "recipient deferred 451", server: func(f *fakeSMTP) { f.Rcpt = map[string]string{"c@example.test": "451 4.3.0 try later"} },
			wantText: "451", wantDelivered: 1},
		{name: "one refused, one deferred: retry", server: func(f *fakeSMTP) {
			f.Rcpt = map[string]string{"c@example.test": "550 5.1.1 no such user", "admin@hires.test": "452 4.2.2 mailbox full"}
		}, wantText: "452"},
		{name: "content refused 554", server: func(f *fakeSMTP) { f.DataEnd = "554 5.7.1 spam" }, wantPermanent: true, wantText: "554"},
		{name: "content deferred 421", server: func(f *fakeSMTP) { f.DataEnd = "421 4.7.0 slow down" }, wantText: "421"},
		{name: "sender refused 553", server: func(f *fakeSMTP) { f.MailFrom = "553 5.7.1 not your address" }, wantPermanent: true, wantText: "553"},
		{name: "service unavailable at greeting", server: func(f *fakeSMTP) { f.Greeting = "421 4.3.2 maintenance" }, wantText: "connect"},
		{name: "authentication refused: fixable, so temporary", server: func(f *fakeSMTP) { f.Auth = "535 5.7.8 bad credentials" },
			cfg: func(c *Config) { c.Username, c.Password = "user", secret }, wantText: "535"},
		{name: "starttls required but not offered", cfg: func(c *Config) { c.TLS = "starttls" }, wantText: "STARTTLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeSMTP(t, tt.server)
			m := newTestMailer(t, f, tt.cfg)
			err := m.Send(context.Background(), readyMsg("c@example.test"))
			require.Error(t, err)
			t.Log(err)
			assert.Equal(t, tt.wantPermanent, Permanent(err))
			assert.ErrorContains(t, err, tt.wantText)
			assert.NotContains(t, err.Error(), secret)
			assert.NotContains(t, err.Error(), "affected recipient", "addresses are kept out of errors")
			assert.Len(t, f.Received(), tt.wantDelivered)
			if !strings.HasPrefix(f.Greeting, "4") { // else the server hung up itself
				assert.Eventually(t, func() bool { return f.Ended() == 1 }, 5*time.Second, 10*time.Millisecond,
					"the session is closed, not leaked")
			}
			// Wrapping by the caller keeps the classification.
			assert.Equal(t, tt.wantPermanent, Permanent(fmt.Errorf("activity: %w", err)))
		})
	}
}

// decodeMail parses a message the fake server received into its headers
// and its decoded plain-text and HTML parts.
func decodeMail(t *testing.T, data string) (h netmail.Header, text, html string) {
	t.Helper()
	msg, err := netmail.ReadMessage(strings.NewReader(strings.ReplaceAll(data, "\n", "\r\n")))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(p)
		require.NoError(t, err)
		switch ct := p.Header.Get("Content-Type"); {
		case strings.HasPrefix(ct, "text/plain"):
			text = string(b)
		case strings.HasPrefix(ct, "text/html"):
			html = string(b)
		}
	}
	return msg.Header, text, html
}

func TestSendAuthenticates(t *testing.T) {
	f := startFakeSMTP(t, func(f *fakeSMTP) { f.Auth = "235 2.7.0 ok" })
	m := newTestMailer(t, f, func(c *Config) { c.Username, c.Password = "user", secret })
	require.NoError(t, m.Send(context.Background(), readyMsg("c@example.test")))
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.authLog, 1)
	assert.True(t, strings.HasPrefix(f.authLog[0], "PLAIN"), f.authLog[0])
}

func TestSendConnectionErrorsAreTemporary(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close()) // nothing listens there now

	m, err := New(Config{Host: "127.0.0.1", Port: port, TLS: "none", From: "a@hires.test"})
	require.NoError(t, err)
	err = m.Send(context.Background(), readyMsg("c@example.test"))
	require.Error(t, err)
	assert.False(t, Permanent(err))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = m.Send(ctx, readyMsg("c@example.test"))
	require.Error(t, err)
	assert.False(t, Permanent(err))

	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	err = m.Send(ctx, readyMsg("c@example.test"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, Permanent(err))
}

func TestSendInvalidMessageIsPermanent(t *testing.T) {
	f := startFakeSMTP(t, nil)
	m := newTestMailer(t, f, nil)
	for _, msg := range []Message{
		{Kind: KindImageReady, JobID: "", To: "c@example.test", Data: testData()},
		{Kind: "bogus", JobID: "j", To: "c@example.test", Data: testData()},
		{Kind: KindImageReady, JobID: "j", To: "c@example.test"},
	} {
		err := m.Send(context.Background(), msg)
		require.Error(t, err)
		assert.True(t, Permanent(err), err.Error())
	}
	assert.Empty(t, f.Received(), "nothing half-rendered is sent")
}

func TestPermanent(t *testing.T) {
	perm := &sendError{op: "x", permanent: true, err: errors.New("550")}
	temp := &sendError{op: "y", err: errors.New("451")}
	assert.False(t, Permanent(nil))
	assert.False(t, Permanent(errors.New("plain")))
	assert.False(t, Permanent(context.DeadlineExceeded))
	assert.True(t, Permanent(perm))
	assert.False(t, Permanent(temp))
	assert.True(t, Permanent(errors.Join(perm, perm)))
	assert.False(t, Permanent(errors.Join(perm, temp)))
	assert.True(t, Permanent(fmt.Errorf("wrapped: %w", errors.Join(perm))))
	assert.True(t, Permanent(ErrDisabled))
}

func attentionMsg(to string) Message {
	return Message{Kind: KindRefundAttention, JobID: "job42", To: to, AdminOnly: true, Data: testData()}
}

func TestSendAdminOnly(t *testing.T) {
	tests := []struct {
		name        string
		msg         Message
		admin       string
		wantSubject string // "" when nothing is sent
		wantErrIs   error
	}{
		{name: "refund attention goes to the admin alone", msg: attentionMsg("c@example.test"), admin: "admin@hires.test",
			wantSubject: "Action needed: refund of USD 3.84 for job job42 was refused - Hi-res Images"},
		{name: "without a customer address", msg: attentionMsg(""), admin: "admin@hires.test",
			wantSubject: "Action needed: refund of USD 3.84 for job job42 was refused - Hi-res Images"},
		{name: "an invalid customer address is ignored", msg: attentionMsg("not an address"), admin: "admin@hires.test",
			wantSubject: "Action needed: refund of USD 3.84 for job job42 was refused - Hi-res Images"},
		{name: "the customer is the admin: one email", msg: attentionMsg("ADMIN@hires.test"), admin: "admin@hires.test",
			wantSubject: "Action needed: refund of USD 3.84 for job job42 was refused - Hi-res Images"},
		{name: "an admin-only kind is never sent to the customer", msg: func() Message {
			m := attentionMsg("c@example.test")
			m.AdminOnly = false
			return m
		}(), admin: "admin@hires.test", wantSubject: "Action needed: refund of USD 3.84 for job job42 was refused - Hi-res Images"},
		{name: "a customer kind sent to the admin only", msg: func() Message {
			m := readyMsg("c@example.test")
			m.AdminOnly = true
			return m
		}(), admin: "admin@hires.test", wantSubject: "Your high-resolution image is ready - Hi-res Images"},
		{name: "no admin address: nobody to send to", msg: attentionMsg("c@example.test"), wantErrIs: ErrNoAdminAddress},
		{name: "no admin address, admin-only kind without the flag", msg: func() Message {
			m := attentionMsg("c@example.test")
			m.AdminOnly = false
			return m
		}(), wantErrIs: ErrNoAdminAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeSMTP(t, nil)
			m := newTestMailer(t, f, func(c *Config) { c.AdminCopy = tt.admin })
			err := m.Send(context.Background(), tt.msg)
			if tt.wantErrIs != nil {
				require.ErrorIs(t, err, tt.wantErrIs)
				assert.True(t, Permanent(err), "retrying cannot help")
				assert.True(t, Permanent(fmt.Errorf("activity: %w", err)))
				assert.ErrorContains(t, err, "no admin address")
				assert.Empty(t, f.Received())
				assert.Zero(t, f.Ended(), "no SMTP session at all")
				return
			}
			require.NoError(t, err)
			got := f.Received()
			require.Len(t, got, 1, "one email, to the admin")
			assert.Equal(t, []string{"admin@hires.test"}, got[0].To)
			h, text, html := decodeMail(t, got[0].Data)
			assert.Equal(t, tt.wantSubject, h.Get("Subject"), "no Copy: prefix")
			assert.Equal(t, "<admin@hires.test>", h.Get("To"))
			assert.Equal(t, m.MessageID(tt.msg, true), h.Get("Message-ID"))
			assert.Equal(t, string(tt.msg.Kind), h.Get("X-Hires-Kind"))
			for _, part := range []string{text, html} {
				assert.NotEmpty(t, part)
				assert.NotContains(t, part, "Copy", "sent as is: no copy note")
				assert.NotContains(t, part, "c@example.test", "the customer's address is not used")
			}
		})
	}
}

// Every kind goes to the right people: the customer with an admin copy,
// or the admin alone.
func TestSendEachKind(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			f := startFakeSMTP(t, nil)
			m := newTestMailer(t, f, nil)
			msg := Message{Kind: kind, JobID: "job42", To: "c@example.test", Data: testData()}
			require.NoError(t, m.Send(context.Background(), msg))
			var gotTo []string
			for _, r := range f.Received() {
				require.Len(t, r.To, 1)
				gotTo = append(gotTo, r.To[0])
			}
			if kind == KindRefundAttention {
				assert.Equal(t, []string{"admin@hires.test"}, gotTo)
				return
			}
			assert.Equal(t, []string{"c@example.test", "admin@hires.test"}, gotTo)
		})
	}
}

func TestMessageIDDistinctPerKind(t *testing.T) {
	m, err := New(Config{Host: "h", From: "images@example.com"})
	require.NoError(t, err)
	seen := map[string]Kind{}
	for _, kind := range Kinds {
		for _, admin := range []bool{false, true} {
			id := m.MessageID(Message{Kind: kind, JobID: "j1"}, admin)
			prev, dup := seen[id]
			assert.False(t, dup, "%s reuses the Message-ID of %s", kind, prev)
			seen[id] = kind
		}
	}
	msg := attentionMsg("")
	assert.Equal(t, "<job-job42-refund-needs-attention-admin@example.com>", m.MessageID(msg, true))
	assert.Equal(t, m.MessageID(msg, true), m.MessageID(msg, true), "deterministic")
	assert.Equal(t, "<job-job42-payment-processing-customer@example.com>",
		m.MessageID(Message{Kind: KindPaymentProcessing, JobID: "job42"}, false))
}
