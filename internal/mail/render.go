package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"hires/internal/jobs"
)

// Kind is one of the emails the service sends about a job. Its value is
// used in the Message-ID and the X-Hires-Kind header.
type Kind string

// The emails.
const (
	// KindPaymentReceived: the payment went through and processing started.
	KindPaymentReceived Kind = "payment-received"
	// KindImageReady: the upscaled image can be downloaded.
	KindImageReady Kind = "image-ready"
	// KindExpiringSoon: the download link expires soon.
	KindExpiringSoon Kind = "expiring-soon"
	// KindFailedRefunded: the job failed and the payment was refunded.
	KindFailedRefunded Kind = "failed-refunded"
	// KindPaymentProcessing: the customer completed Checkout with a delayed
	// payment method (bank debit); the bank confirms it within days.
	KindPaymentProcessing Kind = "payment-processing"
	// KindRefundAttention goes to the admin only (see Message.AdminOnly):
	// Stripe kept refusing a refund that is owed, the service stopped
	// retrying, and a person has to settle it.
	KindRefundAttention Kind = "refund-needs-attention"
)

// Kinds lists every Kind, for previews and tests.
var Kinds = []Kind{
	KindPaymentReceived, KindImageReady, KindExpiringSoon, KindFailedRefunded,
	KindPaymentProcessing, KindRefundAttention,
}

// adminOnlyKinds are notices for the admin: Send never sends them to the
// customer, whatever Message.AdminOnly says.
var adminOnlyKinds = map[Kind]bool{KindRefundAttention: true}

// Message is one email about a job.
type Message struct {
	Kind  Kind
	JobID string
	// To is the customer's address; empty when the customer gave none (the
	// admin copy is still sent). Ignored when the message is admin-only.
	To string
	// AdminOnly sends the message to the admin address (Config.AdminCopy)
	// only, as is, without "Copy: " or a copy note. Admin-only kinds
	// (KindRefundAttention) are always sent so. With no admin address
	// configured, Send fails permanently with ErrNoAdminAddress.
	AdminOnly bool
	// Seq is 0 for the first email of this kind about the job and is
	// incremented by the caller for a deliberate resend (an admin's
	// "Resend"), so that receivers do not drop it as a duplicate of the
	// first. A retry of the same send must keep the same Seq.
	Seq  int
	Data MessageData
}

// MessageData are the facts an email shows. Which fields a kind requires is
// checked by Render.
type MessageData struct {
	// JobURL is the customer's job status page.
	JobURL string
	// DownloadURL is the (expiring) download link.
	DownloadURL string
	// ExpiresAt is when DownloadURL stops working. It is shown in its own
	// location with the zone named, e.g. "Fri 27 Nov 2026 21:37 UTC".
	ExpiresAt time.Time
	// Resolution is the upscale factor sold, e.g. "4x".
	Resolution                string
	OutputWidth, OutputHeight int
	// AmountCents is in the currency's minor unit (as Stripe counts it):
	// paid for KindPaymentReceived and KindPaymentProcessing, refunded for
	// KindFailedRefunded, owed for KindRefundAttention.
	AmountCents int64
	// Currency is an ISO 4217 code, any case.
	Currency string
	// Reason is the machine-readable failure reason (jobs.Reason*); only a
	// friendly text for it is ever shown.
	Reason string
	// SiteName names the service in subjects and signatures; optional.
	SiteName string
	// Detail is Stripe's last refusal of the refund, for
	// KindRefundAttention (admin only); optional. It is shown on one line,
	// at most MaxDetailLength characters.
	Detail string
	// PaymentID is Stripe's PaymentIntent ID (pi_...), shown in
	// KindRefundAttention so that the admin can find the payment; optional.
	PaymentID string
}

// MaxDetailLength caps MessageData.Detail as shown, in characters.
const MaxDetailLength = 500

//go:embed templates
var templateFS embed.FS

type kindTemplates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// templates pairs each kind's "subject" and "body" with a "layout":
// layout.* greets the customer, admin_layout.* is for notices to the admin.
var templates = func() map[Kind]kindTemplates {
	files := map[Kind]struct{ name, layout string }{
		KindPaymentReceived:   {"payment_received", "layout"},
		KindImageReady:        {"image_ready", "layout"},
		KindExpiringSoon:      {"expiring_soon", "layout"},
		KindFailedRefunded:    {"failed_refunded", "layout"},
		KindPaymentProcessing: {"payment_processing", "layout"},
		KindRefundAttention:   {"refund_attention", "admin_layout"},
	}
	out := make(map[Kind]kindTemplates, len(files))
	for kind, f := range files {
		out[kind] = kindTemplates{
			text: texttemplate.Must(texttemplate.New("").ParseFS(templateFS, "templates/"+f.layout+".txt", "templates/"+f.name+".txt")),
			html: htmltemplate.Must(htmltemplate.New("").ParseFS(templateFS, "templates/"+f.layout+".html", "templates/"+f.name+".html")),
		}
	}
	return out
}()

// view is what the templates see: every value already formatted.
type view struct {
	Site        string // "" when not configured
	JobID       string
	JobURL      string
	DownloadURL string
	Expires     string
	Resolution  string
	OutputSize  string
	Amount      string
	Reason      string
	Detail      string // one line, capped
	PaymentID   string
	// CopyNote is set on the admin copy only.
	CopyNote string
	Subject  string
}

// errInvalidMessage marks a message that cannot be rendered: retrying the
// same message will not help.
var errInvalidMessage = errors.New("mail: invalid message")

// Render returns the subject and the plain-text and HTML bodies of msg as
// sent to the customer, or to the admin for an admin-only kind (no copy
// note either way).
func Render(msg Message) (subject, text, html string, err error) {
	return render(msg, "")
}

func render(msg Message, copyNote string) (subject, text, html string, err error) {
	t, ok := templates[msg.Kind]
	if !ok {
		return "", "", "", fmt.Errorf("%w: unknown kind %q", errInvalidMessage, msg.Kind)
	}
	v, err := newView(msg)
	if err != nil {
		return "", "", "", err
	}
	v.CopyNote = copyNote

	var b bytes.Buffer
	if err := t.text.ExecuteTemplate(&b, "subject", v); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s subject: %w", msg.Kind, err)
	}
	subject = cleanHeader(b.String())
	v.Subject = subject
	b.Reset()
	if err := t.text.ExecuteTemplate(&b, "layout", v); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s text: %w", msg.Kind, err)
	}
	text = tidyText(b.String())
	b.Reset()
	if err := t.html.ExecuteTemplate(&b, "layout", v); err != nil {
		return "", "", "", fmt.Errorf("mail: render %s html: %w", msg.Kind, err)
	}
	return subject, text, b.String(), nil
}

func newView(msg Message) (view, error) {
	d := msg.Data
	v := view{
		Site:       oneLine(d.SiteName),
		JobID:      oneLine(msg.JobID),
		Resolution: oneLine(d.Resolution),
		Reason:     FriendlyReason(d.Reason),
		Detail:     capLength(cleanHeader(d.Detail), MaxDetailLength),
		PaymentID:  oneLine(d.PaymentID),
	}
	if d.OutputWidth > 0 && d.OutputHeight > 0 {
		v.OutputSize = fmt.Sprintf("%d × %d px", d.OutputWidth, d.OutputHeight)
	}
	var errs []error
	need := func(ok bool, what string) {
		if !ok {
			errs = append(errs, errors.New(what))
		}
	}
	var err error
	if d.JobURL != "" {
		if v.JobURL, err = webURL(d.JobURL); err != nil {
			errs = append(errs, fmt.Errorf("JobURL: %w", err))
		}
	}
	if d.DownloadURL != "" {
		if v.DownloadURL, err = webURL(d.DownloadURL); err != nil {
			errs = append(errs, fmt.Errorf("DownloadURL: %w", err))
		}
	}
	if !d.ExpiresAt.IsZero() {
		v.Expires = FormatTime(d.ExpiresAt)
	}
	if d.AmountCents != 0 || d.Currency != "" {
		if v.Amount, err = FormatAmount(d.AmountCents, d.Currency); err != nil {
			errs = append(errs, err)
		}
	}
	switch msg.Kind {
	case KindPaymentReceived:
		need(d.AmountCents > 0, "the amount paid is required")
		need(d.JobURL != "", "JobURL is required")
	case KindImageReady, KindExpiringSoon:
		need(d.DownloadURL != "", "DownloadURL is required")
		need(!d.ExpiresAt.IsZero(), "ExpiresAt is required")
	case KindFailedRefunded:
		need(d.AmountCents > 0, "the amount refunded is required")
	case KindPaymentProcessing:
		need(d.AmountCents > 0, "the amount paid is required")
	case KindRefundAttention:
		need(d.AmountCents > 0, "the amount owed is required")
	}
	if len(errs) > 0 {
		return view{}, fmt.Errorf("%w: %s for job %s: %w", errInvalidMessage, msg.Kind, v.JobID, errors.Join(errs...))
	}
	return v, nil
}

// webURL accepts only absolute http(s) URLs: anything else in a link is a
// bug or an attack.
func webURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("want an absolute http(s) URL, got %q", raw)
	}
	return u.String(), nil
}

// FormatTime shows t in its own location with the zone named, e.g.
// "Fri 27 Nov 2026 21:37 UTC", or "Fri 27 Nov 2026 22:37 CET (UTC+01:00)"
// elsewhere.
func FormatTime(t time.Time) string {
	s := t.Format("Mon 2 Jan 2006 15:04")
	name, offset := t.Zone()
	if offset == 0 && (name == "UTC" || name == "GMT" || name == "") {
		return s + " UTC"
	}
	sign := '+'
	if offset < 0 {
		sign, offset = '-', -offset
	}
	utc := fmt.Sprintf("UTC%c%02d:%02d", sign, offset/3600, offset%3600/60)
	if name == "" || strings.ContainsAny(name, "+-0123456789") {
		return s + " " + utc // the zone has no abbreviation of its own
	}
	return s + " " + name + " (" + utc + ")"
}

// decimals lists the currencies whose minor unit is not 1/100 (as Stripe
// counts amounts).
var decimals = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "JPY": 0, "KMF": 0, "KRW": 0, "MGA": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3,
}

// FormatAmount formats an amount in the currency's minor unit, e.g.
// (384, "usd") → "USD 3.84" and (500, "jpy") → "JPY 500".
func FormatAmount(minor int64, currency string) (string, error) {
	cur := strings.ToUpper(strings.TrimSpace(currency))
	if len(cur) != 3 || strings.IndexFunc(cur, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return "", fmt.Errorf("invalid currency %q", currency)
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	d, ok := decimals[cur]
	if !ok {
		d = 2
	}
	switch d {
	case 0:
		return fmt.Sprintf("%s %s%d", cur, sign, minor), nil
	case 3:
		return fmt.Sprintf("%s %s%d.%03d", cur, sign, minor/1000, minor%1000), nil
	default:
		return fmt.Sprintf("%s %s%d.%02d", cur, sign, minor/100, minor%100), nil
	}
}

// friendlyReasons maps machine failure reasons to what a customer is told.
var friendlyReasons = map[string]string{
	jobs.ReasonUpsamplerRejected:  "The upscaling service could not accept this image (for example, its format or size is not supported).",
	jobs.ReasonUpsamplerFailed:    "The upscaling service could not process this image.",
	jobs.ReasonUpsamplerNoOutput:  "The upscaling service finished without producing an image.",
	jobs.ReasonUpsamplerSubmitErr: "We could not reach the upscaling service.",
	jobs.ReasonUpsamplerTimeout:   "Upscaling took longer than the time allowed.",
	jobs.ReasonResultFetchFailed:  "We could not retrieve the upscaled image.",
	jobs.ReasonResultInvalid:      "The upscaled image we received was damaged or incomplete.",
	jobs.ReasonCancelled:          "The job was cancelled.",
	jobs.ReasonTerminated:         "The job was stopped before it could finish.",
	jobs.ReasonLatePayment:        "Your payment arrived after the order had expired.",
}

const defaultReason = "An unexpected problem stopped us from processing your image."

// FriendlyReason returns the customer-facing text for a machine failure
// reason. Anything after a ':' (internal detail) is ignored; unknown
// reasons get a generic text, never the raw value.
func FriendlyReason(reason string) string {
	code, _, _ := strings.Cut(reason, ":")
	if s, ok := friendlyReasons[strings.ToLower(strings.TrimSpace(code))]; ok {
		return s
	}
	return defaultReason
}

// oneLine removes control characters (newlines included) so that a value
// cannot break the layout of the text part or a header.
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
}

func cleanHeader(s string) string { return strings.Join(strings.Fields(oneLine(s)), " ") }

// capLength shortens s to at most n characters, ending in "…" when cut.
func capLength(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimRightFunc(string(r[:n-1]), unicode.IsSpace) + "…"
}

// tidyText trims trailing spaces and collapses runs of blank lines that
// optional template sections leave behind.
func tidyText(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	out := make([]string, 0, len(lines))
	blank := 0
	for _, l := range lines {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		if l == "" {
			blank++
			if blank > 1 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n"
}
