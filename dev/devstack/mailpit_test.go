package devstack

import (
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sendTestMail(t *testing.T, m *Mailpit, to, subject string) error {
	t.Helper()
	addr := net.JoinHostPort(m.SMTPHost, strconv.Itoa(m.SMTPPort))
	body := "From: Dev <dev@example.test>\r\n" +
		"To: " + to + "\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + subject + "@example.test>\r\n" +
		"X-Test: yes\r\n" +
		"\r\n" +
		"hello " + subject + "\r\n"
	return smtp.SendMail(addr, nil, "dev@example.test", []string{to}, []byte(body))
}

func TestStartMailpit(t *testing.T) {
	bin := skipWithoutTool(t, "mailpit")
	ctx := testCtx(t)

	start := time.Now()
	m, err := StartMailpit(ctx, MailpitOptions{Bin: bin, Output: newLogWriter(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Stop() })
	t.Logf("mailpit ready in %v: SMTP %s:%d, web %s", time.Since(start), m.SMTPHost, m.SMTPPort, m.WebURL)
	assert.Equal(t, "127.0.0.1", m.SMTPHost)
	assert.Greater(t, m.SMTPPort, 0)
	assert.True(t, strings.HasPrefix(m.WebURL, "http://127.0.0.1:"), m.WebURL)

	msgs, err := m.Messages(ctx)
	require.NoError(t, err)
	assert.Empty(t, msgs)

	require.NoError(t, sendTestMail(t, m, "someone@example.test", "first"))
	require.NoError(t, sendTestMail(t, m, "other@example.test", "second"))
	msgs, err = m.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	first := msgs[1] // newest first
	assert.Equal(t, "first", first.Subject)
	assert.Equal(t, "first@example.test", first.MessageID)
	assert.Equal(t, "dev@example.test", first.From.Address)
	require.Len(t, first.To, 1)
	assert.Equal(t, "someone@example.test", first.To[0].Address)

	d, err := m.Message(ctx, first.ID)
	require.NoError(t, err)
	assert.Equal(t, first.ID, d.ID)
	assert.Contains(t, d.Text, "hello first")
	assert.Equal(t, []string{"yes"}, d.Headers["X-Test"])

	_, err = m.Message(ctx, "no-such-id")
	require.Error(t, err)

	require.NoError(t, m.DeleteAll(ctx))
	msgs, err = m.Messages(ctx)
	require.NoError(t, err)
	assert.Empty(t, msgs)

	pid, dir := m.PID(), m.dir
	require.NoError(t, m.Stop())
	require.NoError(t, m.Stop(), "Stop is idempotent")
	requireGone(t, pid)
	_, err = os.Stat(dir)
	assert.True(t, errors.Is(err, os.ErrNotExist), "database dir removed, got %v", err)
}

func TestStartMailpitFixedAddrs(t *testing.T) {
	bin := skipWithoutTool(t, "mailpit")
	ctx := testCtx(t)
	smtpPort, err := FreePort()
	require.NoError(t, err)
	httpPort, err := FreePort()
	require.NoError(t, err)

	m, err := StartMailpit(ctx, MailpitOptions{
		Bin:      bin,
		SMTPAddr: "127.0.0.1:" + strconv.Itoa(smtpPort),
		HTTPAddr: "localhost:" + strconv.Itoa(httpPort),
		Output:   newLogWriter(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Stop() })
	assert.Equal(t, smtpPort, m.SMTPPort)
	assert.Equal(t, "http://127.0.0.1:"+strconv.Itoa(httpPort), m.WebURL)

	// A second instance on the same fixed ports fails and says why.
	_, err = StartMailpit(ctx, MailpitOptions{
		Bin:          bin,
		SMTPAddr:     "127.0.0.1:" + strconv.Itoa(smtpPort),
		HTTPAddr:     "127.0.0.1:" + strconv.Itoa(httpPort),
		StartTimeout: 10 * time.Second,
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "address already in use")

	pid := m.PID()
	require.NoError(t, m.Stop())
	requireGone(t, pid)
}

func TestStartMailpitAllowedRecipients(t *testing.T) {
	bin := skipWithoutTool(t, "mailpit")
	ctx := testCtx(t)
	m, err := StartMailpit(ctx, MailpitOptions{Bin: bin, SMTPAllowedRecipients: `@example\.test$`, Output: newLogWriter(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Stop() })

	require.NoError(t, sendTestMail(t, m, "ok@example.test", "allowed"))
	err = sendTestMail(t, m, "nope@elsewhere.test", "refused")
	var te *textproto.Error
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 550, te.Code)
	msgs, err := m.Messages(ctx)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, "allowed", msgs[0].Subject)
}

func TestStartMailpitRejectsNonLoopback(t *testing.T) {
	for _, o := range []MailpitOptions{
		{Bin: "/nonexistent", SMTPAddr: "0.0.0.0:1025"},
		{Bin: "/nonexistent", HTTPAddr: "[::]:8025"},
		{Bin: "/nonexistent", HTTPAddr: "example.com:8025"},
		{Bin: "/nonexistent", SMTPAddr: "no-port"},
	} {
		_, err := StartMailpit(testCtx(t), o)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "mailpit: ")
	}
}

func TestStartMailpitFailureShowsOutput(t *testing.T) {
	dir := t.TempDir()
	fake := dir + "/mailpit"
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho fake-mailpit-says-hello\nexit 3\n"), 0o755))
	_, err := StartMailpit(testCtx(t), MailpitOptions{Bin: fake, StartTimeout: 5 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "mailpit: not ready")
	assert.Contains(t, err.Error(), "fake-mailpit-says-hello")
}
