// Package mail sends the customer emails about a job: payment received,
// payment processing (delayed payment method), image ready, download
// expiring soon, failed and refunded; and notices to the admin only: a
// refund that needs attention. Each is HTML
// with a plain-text alternative, rendered from embedded templates, and
// carries a Message-ID derived from the job, the kind and the recipient so
// that a resend after a crash can be recognised as a duplicate.
package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// ErrDisabled is returned by New when no SMTP host is configured: email is
// off, and the caller should skip sending.
var ErrDisabled = errors.New("mail: email is disabled (no SMTP host configured)")

// ErrInvalidRecipient: the recipient address is not a valid email address.
// It is permanent.
var ErrInvalidRecipient = errors.New("mail: invalid recipient address")

// ErrNoAdminAddress: an admin-only message, but no admin address
// (Config.AdminCopy) is configured, so it has nobody to go to. It is
// permanent (until the configuration changes).
var ErrNoAdminAddress = errors.New("mail: admin-only email, but no admin address is configured (Config.AdminCopy)")

// TLS modes of Config.TLS.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS (mandatory)
	TLSImplicit = "tls"      // TLS from the first byte ("SMTPS", usually port 465)
	TLSNone     = "none"     // no encryption; credentials only to loopback hosts
)

// Config is the SMTP connection and the addresses used.
type Config struct {
	// Host of the SMTP server; empty turns email off (New returns
	// ErrDisabled).
	Host string
	// Port; 0 picks the mode's usual port (587, 465 or 25).
	Port               int
	Username, Password string
	// TLS is TLSStartTLS (also when empty), TLSImplicit or TLSNone.
	TLS string
	// From is the sender, e.g. "Hi-res images <images@example.com>".
	From string
	// AdminCopy, if set, receives a copy of every email ("Copy: " subject)
	// and the admin-only emails (as they are).
	AdminCopy string
}

// String describes the configuration without the password.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "[redacted]"
	}
	return fmt.Sprintf("mail.Config{Host:%q Port:%d Username:%q Password:%q TLS:%q From:%q AdminCopy:%q}",
		c.Host, c.Port, c.Username, pw, c.TLS, c.From, c.AdminCopy)
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// LogValue keeps the password out of slog output.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("host", c.Host), slog.Int("port", c.Port), slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != ""), slog.String("tls", c.TLS),
		slog.String("from", c.From), slog.String("admin_copy", c.AdminCopy),
	)
}

// Mailer sends Messages. A nil *Mailer is "email off": Send returns
// ErrDisabled.
type Mailer struct {
	cfg      Config
	from     *netmail.Address
	admin    *netmail.Address // nil: no admin copies
	idDomain string           // right-hand side of Message-IDs
	// timeout bounds one whole SMTP session (dial to QUIT).
	timeout time.Duration
}

// defaultTimeout bounds an SMTP session when ctx has no earlier deadline.
const defaultTimeout = 30 * time.Second

// New validates cfg. An empty Host returns (nil, ErrDisabled). Errors never
// contain the password.
func New(cfg Config) (*Mailer, error) {
	cfg.Host = strings.TrimSpace(cfg.Host)
	if cfg.Host == "" {
		return nil, ErrDisabled
	}
	cfg.TLS = strings.ToLower(strings.TrimSpace(cfg.TLS))
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	var errs []error
	switch cfg.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		errs = append(errs, fmt.Errorf("SMTP TLS mode must be %s, %s or %s, got %q", TLSStartTLS, TLSImplicit, TLSNone, cfg.TLS))
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{TLSStartTLS: 587, TLSImplicit: 465, TLSNone: 25}[cfg.TLS]
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		errs = append(errs, fmt.Errorf("SMTP port must be between 1 and 65535, got %d", cfg.Port))
	}
	if strings.ContainsAny(cfg.Host, " /\\@") {
		errs = append(errs, fmt.Errorf("SMTP host %q is not a host name", cfg.Host))
	}
	if cfg.Password != "" && cfg.Username == "" {
		errs = append(errs, errors.New("SMTP password set without a username"))
	}
	if cfg.TLS == TLSNone && cfg.Username != "" && !isLoopback(cfg.Host) {
		errs = append(errs, fmt.Errorf("refusing to send SMTP credentials unencrypted to %s: use TLS mode %s or %s", cfg.Host, TLSStartTLS, TLSImplicit))
	}
	m := &Mailer{cfg: cfg, timeout: defaultTimeout}
	from, err := parseAddress(cfg.From)
	if err != nil {
		errs = append(errs, fmt.Errorf("sender (From) %q: %w", cfg.From, err))
	}
	m.from = from
	if strings.TrimSpace(cfg.AdminCopy) != "" {
		if m.admin, err = parseAddress(cfg.AdminCopy); err != nil {
			errs = append(errs, fmt.Errorf("admin copy address %q: %w", cfg.AdminCopy, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("mail: %w", errors.Join(errs...))
	}
	m.idDomain = messageIDDomain(from.Address)
	return m, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// parseAddress accepts one mailbox, "a@b" or "Name <a@b>".
func parseAddress(s string) (*netmail.Address, error) {
	a, err := netmail.ParseAddress(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("not a valid email address")
	}
	local, domain, ok := strings.Cut(a.Address, "@")
	if !ok || local == "" || domain == "" {
		return nil, errors.New("not a valid email address")
	}
	return a, nil
}

// messageIDDomain is the sender's domain when it is a plain host name,
// else "hires".
func messageIDDomain(addr string) string {
	_, domain, _ := strings.Cut(addr, "@")
	domain = strings.ToLower(domain)
	if domain == "" || strings.Trim(domain, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "hires"
	}
	return domain
}

// Recipient roles in Message-IDs.
const (
	roleCustomer = "customer"
	roleAdmin    = "admin"
)

// MessageID returns the Message-ID (with angle brackets) of msg as sent to
// the customer (admin false) or as the admin copy, e.g.
// "<job-42-image-ready-customer@example.com>". It depends only on the job,
// the kind, Seq and the role, so a resend carries the same one. An
// admin-only message has the admin role.
func (m *Mailer) MessageID(msg Message, admin bool) string {
	role := roleCustomer
	if admin {
		role = roleAdmin
	}
	var b strings.Builder
	b.WriteString("<job-")
	b.WriteString(idPart(msg.JobID))
	b.WriteString("-")
	b.WriteString(idPart(string(msg.Kind)))
	if msg.Seq > 0 {
		b.WriteString("-" + strconv.Itoa(msg.Seq))
	}
	b.WriteString("-" + role + "@" + m.idDomain + ">")
	return b.String()
}

// idPart keeps letters, digits and '-' and writes any other byte as "=XX",
// so that distinct IDs stay distinct and the result is a valid dot-atom.
func idPart(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

// Send emails msg to msg.To and, when AdminCopy is set and is not msg.To,
// a copy to the admin (subject prefixed "Copy: "), even when msg.To is
// empty. Nothing to send is not an error. Both go over one SMTP session; a
// failure for one recipient does not stop the other. Use Permanent on the
// error to decide whether a retry can help; a retry resends both, with the
// same Message-IDs. ctx bounds connecting, and its deadline (at most 30s
// from now) bounds the whole session.
//
// An admin-only message (Message.AdminOnly, or an admin-only kind such as
// KindRefundAttention) goes to AdminCopy alone, as is, and msg.To is
// ignored; without AdminCopy, Send fails permanently with
// ErrNoAdminAddress.
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	if m == nil {
		return ErrDisabled
	}
	if strings.TrimSpace(msg.JobID) == "" {
		return &sendError{op: "send " + string(msg.Kind), permanent: true, err: fmt.Errorf("%w: JobID is required", errInvalidMessage)}
	}
	op := fmt.Sprintf("send %s for job %s", msg.Kind, oneLine(msg.JobID))
	subject, text, html, err := render(msg, "")
	if err != nil {
		return &sendError{op: op, permanent: true, err: err}
	}

	type outgoing struct {
		role string
		msg  *gomail.Msg
	}
	var out []outgoing
	var errs []error
	to := strings.TrimSpace(msg.To)
	var toAddr *netmail.Address
	adminOnly := msg.AdminOnly || adminOnlyKinds[msg.Kind]
	if adminOnly {
		if m.admin == nil {
			return &sendError{op: op, permanent: true, err: ErrNoAdminAddress}
		}
		out = append(out, outgoing{roleAdmin, m.build(msg, m.admin, subject, text, html, true)})
	} else if to != "" {
		if toAddr, err = parseAddress(to); err != nil {
			errs = append(errs, &sendError{op: op + " to customer", permanent: true, err: ErrInvalidRecipient})
		} else {
			out = append(out, outgoing{roleCustomer, m.build(msg, toAddr, subject, text, html, false)})
		}
	}
	if !adminOnly && m.admin != nil && (toAddr == nil || !strings.EqualFold(toAddr.Address, m.admin.Address)) {
		note := "Copy of the email to the customer at " + oneLine(to) + "."
		if to == "" {
			note = "Copy: the customer gave no email address, so only this copy was sent."
		} else if toAddr == nil {
			note = "Copy: the customer's address " + strconv.Quote(oneLine(to)) + " is not valid, so only this copy was sent."
		}
		s, t, h, err := render(msg, note)
		if err != nil {
			return &sendError{op: op + " to admin", permanent: true, err: err}
		}
		out = append(out, outgoing{roleAdmin, m.build(msg, m.admin, "Copy: "+s, t, h, true)})
	}
	if len(out) == 0 {
		return errors.Join(errs...)
	}

	client, conn, err := m.client(ctx)
	if err != nil {
		return &sendError{op: op, err: err}
	}
	sc, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		// go-mail leaves the connection open when the session set-up fails
		// after connecting (e.g. STARTTLS not offered).
		conn.close()
		// Connection, TLS and authentication problems are about the server
		// or our settings, not this message: retrying can succeed once they
		// are fixed.
		return errors.Join(append(errs, &sendError{op: op + ": connect to SMTP server", err: err})...)
	}
	for _, o := range out {
		if err := client.SendWithSMTPClient(sc, o.msg); err != nil && !o.msg.IsDelivered() {
			errs = append(errs, classify(op+" to "+o.role, err))
		}
	}
	_ = client.CloseWithSMTPClient(sc) // every message is already accepted or refused
	return errors.Join(errs...)
}

// rawConn remembers the plain TCP connection of a session so that it can
// be closed when go-mail gives up on it.
type rawConn struct {
	mu   sync.Mutex
	conn net.Conn
}

func (r *rawConn) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		r.mu.Lock()
		r.conn = c
		r.mu.Unlock()
	}
	return c, err
}

func (r *rawConn) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		_ = r.conn.Close()
	}
}

// client is a go-mail client for one session, bounded by ctx's deadline.
func (m *Mailer) client(ctx context.Context) (*gomail.Client, *rawConn, error) {
	timeout := m.timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 {
		return nil, nil, context.DeadlineExceeded
	}
	conn := &rawConn{}
	opts := []gomail.Option{gomail.WithPort(m.cfg.Port), gomail.WithTimeout(timeout)}
	switch m.cfg.TLS {
	case TLSImplicit:
		// go-mail dials TLS itself (a custom dialer would hide from it
		// that the session is encrypted).
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS), gomail.WithDialContextFunc(conn.dial))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory), gomail.WithDialContextFunc(conn.dial))
	}
	if m.cfg.Username != "" {
		opts = append(opts, gomail.WithUsername(m.cfg.Username), gomail.WithPassword(m.cfg.Password))
		if m.cfg.TLS == TLSNone {
			// Only to loopback (checked by New): a local test server.
			opts = append(opts, gomail.WithOpportunisticSMTPAuth(
				gomail.SMTPAuthSCRAMSHA256, gomail.SMTPAuthCramMD5, gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc))
		} else {
			opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover))
		}
	}
	c, err := gomail.NewClient(m.cfg.Host, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("SMTP client: %w", err)
	}
	return c, conn, nil
}

func (m *Mailer) build(msg Message, to *netmail.Address, subject, text, html string, admin bool) *gomail.Msg {
	gm := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	gm.FromMailAddress(m.from)
	gm.ToMailAddress(to)
	gm.Subject(subject)
	gm.SetDate()
	id := m.MessageID(msg, admin)
	gm.SetMessageIDWithValue(strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">"))
	gm.SetGenHeader("X-Hires-Job", oneLine(msg.JobID))
	gm.SetGenHeader("X-Hires-Kind", string(msg.Kind))
	// RFC 3834: no out-of-office replies to a machine.
	gm.SetGenHeader("Auto-Submitted", "auto-generated")
	gm.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	gm.SetBodyString(gomail.TypeTextPlain, text)
	gm.AddAlternativeString(gomail.TypeTextHTML, html)
	return gm
}

// sendError is what Send returns (possibly several, joined).
type sendError struct {
	op        string
	permanent bool
	err       error
}

func (e *sendError) Error() string {
	return "mail: " + e.op + ": " + strings.TrimPrefix(e.err.Error(), "mail: ")
}
func (e *sendError) Unwrap() error { return e.err }

// smtpError is a refusal by the server, without go-mail's list of
// recipient addresses (kept out of logs and workflow histories).
type smtpError struct {
	code     int
	enhanced string
	text     string
}

func (e *smtpError) Error() string { return e.text }

// Code is the SMTP reply code, 0 if unknown.
func (e *smtpError) Code() int { return e.code }

// classify turns a go-mail send error for one message into a sendError.
func classify(op string, err error) error {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return &sendError{op: op, err: err}
	}
	text := se.Error()
	if i := strings.Index(text, ", affected recipient(s): "); i >= 0 {
		text = text[:i]
	} else if i := strings.Index(text, ", affected message ID: "); i >= 0 {
		text = text[:i]
	}
	e := &smtpError{code: se.ErrorCode(), enhanced: se.EnhancedStatusCode(), text: text}
	var permanent bool
	switch {
	case e.code >= 500 && e.code < 600:
		permanent = true // the server refused the sender, a recipient or the content
	case e.code >= 400:
		permanent = false
	case se.Reason == gomail.ErrGetSender || se.Reason == gomail.ErrGetRcpts || se.Reason == gomail.ErrNoUnencoded:
		permanent = true // the message itself is unsendable
	}
	return &sendError{op: op, permanent: permanent, err: e}
}

// Permanent reports whether retrying the Send that returned err cannot
// help: the SMTP server refused a recipient, the sender or the content with
// a 5xx reply, a recipient address is invalid, the message cannot be
// rendered, or email is disabled. Temporary are 4xx replies, connection and
// time-out errors, and failures while connecting, negotiating TLS or
// authenticating (settings or server trouble that an operator can fix).
// With several recipients, err is permanent only if every failure is.
func Permanent(err error) bool {
	switch e := err.(type) {
	case nil:
		return false
	case *sendError:
		return e.permanent
	case interface{ Unwrap() []error }:
		errs := e.Unwrap()
		if len(errs) == 0 {
			return false
		}
		for _, err := range errs {
			if !Permanent(err) {
				return false
			}
		}
		return true
	}
	if err == ErrDisabled {
		return true
	}
	if u := errors.Unwrap(err); u != nil {
		return Permanent(u)
	}
	return false
}
