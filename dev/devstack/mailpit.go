package devstack

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MailpitOptions configures StartMailpit.
type MailpitOptions struct {
	// Bin is the mailpit binary; default ToolPath("mailpit").
	Bin string
	// SMTPAddr and HTTPAddr are the loopback host:port pairs for the SMTP
	// server and the web UI/API. Default "127.0.0.1:0": a free port (`make
	// run` uses 127.0.0.1:1025 and 127.0.0.1:8025). Only loopback hosts are
	// accepted: mailpit takes any credentials and no TLS.
	SMTPAddr, HTTPAddr string
	// SMTPAllowedRecipients, if set, is a regular expression; RCPT TO for an
	// address that does not match it is refused with "550 5.1.0", which lets
	// tests produce a permanent delivery failure.
	SMTPAllowedRecipients string
	// MaxMessages is how many messages mailpit keeps before it deletes the
	// oldest: 0 keeps its default (500), a negative value keeps them all.
	MaxMessages int
	// Output receives mailpit's output; nil discards it.
	Output io.Writer
	// StartTimeout bounds start-up; default 30s. ctx may end it earlier.
	StartTimeout time.Duration
}

// Mailpit is a running mailpit: an SMTP server that keeps every message it
// receives, and an HTTP API to read them back.
type Mailpit struct {
	// SMTPHost and SMTPPort are where to send mail (no TLS; any or no
	// credentials are accepted).
	SMTPHost string
	SMTPPort int
	// WebURL is the web UI's and API's base URL, e.g. "http://127.0.0.1:8025".
	WebURL string

	proc     *process
	dir      string // holds the database; removed by Stop
	label    string
	hc       *http.Client
	stopOnce sync.Once
	stopErr  error
}

// StartMailpit runs mailpit on loopback with its database in a temporary
// directory and waits until both its HTTP API and its SMTP server answer.
func StartMailpit(ctx context.Context, opts MailpitOptions) (*Mailpit, error) {
	bin, err := binOrTool(opts.Bin, "mailpit")
	if err != nil {
		return nil, err
	}
	opts.Bin = bin
	if opts.SMTPAddr == "" {
		opts.SMTPAddr = "127.0.0.1:0"
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = "127.0.0.1:0"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	smtpHost, smtpPort, err := loopbackAddr(opts.SMTPAddr)
	if err != nil {
		return nil, fmt.Errorf("mailpit: SMTPAddr: %w", err)
	}
	httpHost, httpPort, err := loopbackAddr(opts.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("mailpit: HTTPAddr: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	for attempt := 1; ; attempt++ {
		m, err := startMailpitOnce(ctx, opts, smtpHost, smtpPort, httpHost, httpPort)
		if err == nil {
			return m, nil
		}
		// mailpit cannot report a port it picked itself, so free ports come
		// from FreePort; on losing that race, try other ones.
		autoPorts := smtpPort == 0 || httpPort == 0
		if autoPorts && attempt < portAttempts && m != nil && m.proc.out.Contains("address already in use") {
			continue
		}
		return nil, err
	}
}

// loopbackAddr splits host:port and insists on a loopback host.
func loopbackAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("invalid port in %q", addr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", 0, fmt.Errorf("%q is not a loopback address", addr)
	}
	return host, port, nil
}

// startMailpitOnce returns the (stopped) handle along with an error so that
// the caller can inspect the output.
func startMailpitOnce(ctx context.Context, opts MailpitOptions, smtpHost string, smtpPort int, httpHost string, httpPort int) (*Mailpit, error) {
	var err error
	if smtpPort == 0 {
		if smtpPort, err = FreePort(); err != nil {
			return nil, fmt.Errorf("mailpit: %w", err)
		}
	}
	if httpPort == 0 {
		if httpPort, err = FreePort(); err != nil {
			return nil, fmt.Errorf("mailpit: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "devstack-mailpit-")
	if err != nil {
		return nil, fmt.Errorf("mailpit: %w", err)
	}
	// A unique label, shown in the SMTP greeting and the web UI config,
	// proves that what answers on the ports is this instance and not one
	// that already held them.
	label := filepath.Base(dir)
	smtpAddr := net.JoinHostPort(smtpHost, strconv.Itoa(smtpPort))
	httpAddr := net.JoinHostPort(httpHost, strconv.Itoa(httpPort))
	args := []string{
		"--smtp", smtpAddr,
		"--listen", httpAddr,
		"--database", filepath.Join(dir, "mailpit.db"),
		"--label", label,
		// No calls home, no DNS lookups of the (loopback) client.
		"--disable-version-check",
		"--smtp-disable-rdns",
		// Accept whatever credentials the service is configured with, over
		// plain SMTP: this is a local test inbox.
		"--smtp-auth-accept-any",
		"--smtp-auth-allow-insecure",
	}
	if opts.SMTPAllowedRecipients != "" {
		args = append(args, "--smtp-allowed-recipients", opts.SMTPAllowedRecipients)
	}
	switch {
	case opts.MaxMessages < 0:
		args = append(args, "--max", "0") // 0: never delete
	case opts.MaxMessages > 0:
		args = append(args, "--max", strconv.Itoa(opts.MaxMessages))
	}
	cmd := exec.Command(opts.Bin, args...)
	cmd.Env = withoutMailpitEnv(os.Environ())
	cmd.Dir = dir
	proc, err := startProcess("mailpit", cmd, opts.Output, nil)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("mailpit: %w", err)
	}
	m := &Mailpit{
		SMTPHost: smtpHost,
		SMTPPort: smtpPort,
		WebURL:   "http://" + httpAddr,
		proc:     proc,
		dir:      dir,
		label:    label,
		hc:       &http.Client{Timeout: 10 * time.Second},
	}
	err = pollUntil(ctx, proc, 50*time.Millisecond, func() error { return m.ready(ctx) })
	if exited, _ := proc.exited(); err == nil && exited {
		// Whoever answered was not our mailpit (it failed to bind a port).
		err = fmt.Errorf("mailpit exited; %s or %s is served by another process", smtpAddr, httpAddr)
	}
	if err != nil {
		proc.kill()
		_ = os.RemoveAll(dir)
		return m, proc.failure("not ready (SMTP %s, HTTP %s): %v", smtpAddr, httpAddr, err)
	}
	return m, nil
}

// withoutMailpitEnv drops MP_* variables, which mailpit reads as settings
// and which would override the flags' intent (e.g. a database path).
func withoutMailpitEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "MP_") {
			out = append(out, kv)
		}
	}
	return out
}

// ready checks that the API answers, that both the API and the SMTP server
// are this instance's (by its label), and that the SMTP server greets.
func (m *Mailpit) ready(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var info struct{ Version string }
	if err := m.getJSON(cctx, "/api/v1/info", &info); err != nil {
		return err
	}
	var ui struct{ Label string }
	if err := m.getJSON(cctx, "/api/v1/webui", &ui); err != nil {
		return err
	}
	if ui.Label != m.label {
		return fmt.Errorf("HTTP %s is served by another mailpit (label %q)", m.WebURL, ui.Label)
	}
	var d net.Dialer
	conn, err := d.DialContext(cctx, "tcp", net.JoinHostPort(m.SMTPHost, strconv.Itoa(m.SMTPPort)))
	if err != nil {
		return fmt.Errorf("SMTP: %w", err)
	}
	defer conn.Close()
	if dl, ok := cctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	greeting, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("SMTP greeting: %w", err)
	}
	if !strings.HasPrefix(greeting, "220") || !strings.Contains(greeting, "("+m.label+")") {
		return fmt.Errorf("SMTP greeting not from this mailpit: %q", strings.TrimSpace(greeting))
	}
	_, _ = io.WriteString(conn, "QUIT\r\n")
	return nil
}

// PID is mailpit's process id.
func (m *Mailpit) PID() int { return m.proc.pid() }

// Stop terminates mailpit and removes its database. Idempotent.
func (m *Mailpit) Stop() error {
	m.stopOnce.Do(func() {
		m.stopErr = m.proc.stop(syscall.SIGTERM, 5*time.Second)
		if err := os.RemoveAll(m.dir); err != nil && m.stopErr == nil {
			m.stopErr = fmt.Errorf("mailpit: remove %s: %w", m.dir, err)
		}
	})
	return m.stopErr
}

// MailpitAddress is a mailbox as mailpit reports it.
type MailpitAddress struct {
	Name    string
	Address string
}

// MailpitMessage is a stored message's summary.
type MailpitMessage struct {
	// ID is mailpit's own id, for Message.
	ID string
	// MessageID is the Message-ID header without the angle brackets.
	MessageID string
	From      MailpitAddress
	To        []MailpitAddress
	Subject   string
	Created   time.Time
}

// MailpitMessageDetail is a stored message with its bodies and headers.
type MailpitMessageDetail struct {
	MailpitMessage
	// Text and HTML are the decoded text/plain and text/html parts.
	Text, HTML string
	// Username is the SMTP AUTH user the message was sent with, if any.
	Username string
	// Headers maps canonical header names to their (decoded) values.
	Headers map[string][]string
}

// Messages lists every stored message, newest first.
func (m *Mailpit) Messages(ctx context.Context) ([]MailpitMessage, error) {
	const page = 200
	var all []MailpitMessage
	for start := 0; ; start += page {
		var resp struct {
			MessagesCount int              `json:"messages_count"`
			Messages      []MailpitMessage `json:"messages"`
		}
		q := url.Values{"start": {strconv.Itoa(start)}, "limit": {strconv.Itoa(page)}}
		if err := m.getJSON(ctx, "/api/v1/messages?"+q.Encode(), &resp); err != nil {
			return nil, err
		}
		all = append(all, resp.Messages...)
		if len(resp.Messages) < page || len(all) >= resp.MessagesCount {
			return all, nil
		}
	}
}

// Message returns one stored message by its mailpit ID, with its headers.
func (m *Mailpit) Message(ctx context.Context, id string) (MailpitMessageDetail, error) {
	var d MailpitMessageDetail
	p := "/api/v1/message/" + url.PathEscape(id)
	if err := m.getJSON(ctx, p, &d); err != nil {
		return MailpitMessageDetail{}, err
	}
	if err := m.getJSON(ctx, p+"/headers", &d.Headers); err != nil {
		return MailpitMessageDetail{}, err
	}
	return d, nil
}

// DeleteAll deletes every stored message.
func (m *Mailpit) DeleteAll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, m.WebURL+"/api/v1/messages", nil)
	if err != nil {
		return err
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit: DELETE /api/v1/messages: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("mailpit: DELETE /api/v1/messages: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return nil
}

func (m *Mailpit) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.WebURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("mailpit: GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit: GET %s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("mailpit: GET %s: %w", path, err)
	}
	return nil
}
