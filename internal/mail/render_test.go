package mail

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testExpiry = time.Date(2026, 11, 27, 21, 37, 0, 0, time.UTC)

func testData() MessageData {
	return MessageData{
		JobURL:       "https://img.example.com/jobs/7c1e",
		DownloadURL:  "https://img.example.com/v1/downloads/AbC123xyz",
		ExpiresAt:    testExpiry,
		Resolution:   "4x",
		OutputWidth:  16000,
		OutputHeight: 12000,
		AmountCents:  384,
		Currency:     "usd",
		Reason:       "upsampler_timeout",
		SiteName:     "Hi-res Images",
		Detail:       "Charge ch_3Qx9 has been disputed.",
		PaymentID:    "pi_3Qx9",
	}
}

// customerLayout are phrases of the customer layout, out of place in a
// notice to the admin.
var customerLayout = []string{"Hello", "Thank you", "you ordered", "You receive this email", "Copy"}

func TestRender(t *testing.T) {
	tests := []struct {
		kind    Kind
		subject string
		// facts must appear in both the text and the HTML part.
		facts []string
		// absent must appear in neither.
		absent []string
		// admin: a notice to the admin, in the admin layout.
		admin bool
	}{
		{
			kind:    KindPaymentReceived,
			subject: "Payment received - we are upscaling your image - Hi-res Images",
			facts:   []string{"USD 3.84", "4x", "https://img.example.com/jobs/7c1e", "Job reference: 7c1e"},
			absent:  []string{"AbC123xyz", "UTC"},
		},
		{
			kind:    KindImageReady,
			subject: "Your high-resolution image is ready - Hi-res Images",
			facts: []string{
				"https://img.example.com/v1/downloads/AbC123xyz", "Fri 27 Nov 2026 21:37 UTC",
				"4x", "16000 × 12000 px", "Download your image",
			},
			absent: []string{"USD"},
		},
		{
			kind:    KindExpiringSoon,
			subject: "Your download link expires soon - Hi-res Images",
			facts:   []string{"https://img.example.com/v1/downloads/AbC123xyz", "Fri 27 Nov 2026 21:37 UTC", "expires"},
			absent:  []string{"USD"},
		},
		{
			kind:    KindFailedRefunded,
			subject: "We could not process your image - payment refunded - Hi-res Images",
			facts:   []string{"USD 3.84", "refunded", "Upscaling took longer than the time allowed."},
			absent:  []string{"upsampler_timeout", "AbC123xyz"},
		},
		{
			kind:    KindPaymentProcessing,
			subject: "Payment processing - we are waiting for your bank - Hi-res Images",
			facts: []string{
				"USD 3.84", "4x", "https://img.example.com/jobs/7c1e", "Job reference: 7c1e",
				"bank debit", "a few business days", "email you again", "you will not be charged",
			},
			absent: []string{"AbC123xyz", "UTC", "Upscaling took longer"},
		},
		{
			kind:    KindRefundAttention,
			subject: "Action needed: refund of USD 3.84 for job 7c1e was refused - Hi-res Images",
			facts: []string{
				"7c1e", "USD 3.84", "Upscaling took longer than the time allowed.",
				"Charge ch_3Qx9 has been disputed.", "pi_3Qx9", "stopped retrying",
				"Stripe Dashboard", "charge.refunded", "POST /v1/admin/jobs/7c1e/refund-settled", "admin token", "note",
				"administrator", "not sent to the customer",
			},
			absent: append([]string{"upsampler_timeout", "AbC123xyz"}, customerLayout...),
			admin:  true,
		},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			subject, text, html, err := Render(Message{Kind: tt.kind, JobID: "7c1e", To: "c@example.com", Data: testData()})
			require.NoError(t, err)
			assert.Equal(t, tt.subject, subject)
			for _, f := range tt.facts {
				assert.Contains(t, text, f, "text part")
				assert.Contains(t, html, f, "html part")
			}
			for _, a := range tt.absent {
				assert.NotContains(t, text, a, "text part")
				assert.NotContains(t, html, a, "html part")
			}
			assert.True(t, strings.HasPrefix(html, "<!DOCTYPE html>"), "a whole HTML document")
			assert.Contains(t, html, `name="viewport"`, "readable on a phone")
			assert.Contains(t, html, "<title>"+subject+"</title>")
			assert.NotContains(t, html, "<link", "no external assets")
			assert.NotContains(t, html, "<img", "no external assets")
			assert.NotContains(t, text, "<", "text part is not HTML")
			assert.NotContains(t, text, "\n\n\n", "no runs of blank lines")
			if tt.admin {
				assert.Contains(t, text, "Job reference: 7c1e")
				return
			}
			assert.Contains(t, text, "Thank you for using Hi-res Images!")
			assert.NotContains(t, text+html, "ch_3Qx9", "Stripe's refusal is for the admin only")
			assert.NotContains(t, text+html, "pi_3Qx9", "Stripe's payment ID is for the admin only")
		})
	}
}

func TestRenderRefundAttentionDetail(t *testing.T) {
	long := strings.Repeat("declined ", 200)
	tests := []struct {
		name   string
		detail string
		// want is the refusal as shown in both parts ("" to skip).
		want string
		// htmlHas must be in the HTML part; htmlNot must not.
		htmlHas, htmlNot []string
		// textNot must not be in the text part.
		textNot []string
	}{
		{name: "plain", detail: "Charge ch_1 has already been refunded.", want: "Charge ch_1 has already been refunded."},
		{name: "none recorded", detail: "", want: "(none recorded)"},
		{name: "html is escaped", detail: `<script>alert("x")</script> & <a href="https://evil.example">click</a>`,
			htmlHas: []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;a href="},
			htmlNot: []string{"<script", `<a href="https://evil.example"`}},
		{name: "one line", detail: "first line\r\nFAKE: injected\n\n\tsecond", want: "first line FAKE: injected second",
			textNot: []string{"\nFAKE", "\nsecond"}},
		{name: "long is capped", detail: long},
		{name: "long multibyte is capped on a character", detail: strings.Repeat("é", 2000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testData()
			d.Detail = tt.detail
			_, text, html, err := Render(Message{Kind: KindRefundAttention, JobID: "j1", Data: d})
			require.NoError(t, err)
			shown := refusalLine(t, text)
			assert.LessOrEqual(t, utf8.RuneCountInString(shown), MaxDetailLength)
			assert.True(t, utf8.ValidString(shown))
			if utf8.RuneCountInString(strings.TrimSpace(tt.detail)) > MaxDetailLength {
				assert.True(t, strings.HasSuffix(shown, "…"), "a cut is marked")
				assert.True(t, strings.HasPrefix(strings.TrimSpace(tt.detail), strings.TrimSuffix(shown, "…")), "cut, not rewritten")
			}
			if tt.want != "" {
				assert.Equal(t, tt.want, shown)
				assert.Contains(t, html, tt.want)
			}
			for _, s := range tt.htmlHas {
				assert.Contains(t, html, s)
			}
			for _, s := range tt.htmlNot {
				assert.NotContains(t, html, s)
			}
			for _, s := range tt.textNot {
				assert.NotContains(t, text, s)
			}
		})
	}
}

// refusalLine returns what the text part shows as Stripe's last refusal.
func refusalLine(t *testing.T, text string) string {
	t.Helper()
	const label = "Stripe's last refusal: "
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, label); ok {
			return v
		}
	}
	t.Fatalf("no %q line in:\n%s", label, text)
	return ""
}

func TestCapLength(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven ch…"},
		{"eleven    x", 10, "eleven…"}, // no space before the mark
		{"ééééééé", 4, "ééé…"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, capLength(tt.in, tt.n), tt.in)
	}
}

func TestRenderWithoutOptionalData(t *testing.T) {
	minimal := map[Kind]MessageData{
		KindPaymentReceived: {JobURL: "https://x.example/j", AmountCents: 500, Currency: "EUR"},
		KindImageReady:      {DownloadURL: "https://x.example/d", ExpiresAt: testExpiry},
		KindExpiringSoon:    {DownloadURL: "https://x.example/d", ExpiresAt: testExpiry},
		KindFailedRefunded:  {AmountCents: 500, Currency: "eur"},
		// The job page is optional while the bank decides.
		KindPaymentProcessing: {AmountCents: 500, Currency: "EUR"},
		KindRefundAttention:   {AmountCents: 500, Currency: "eur"},
	}
	require.Len(t, minimal, len(Kinds), "every kind")
	for kind, d := range minimal {
		t.Run(string(kind), func(t *testing.T) {
			subject, text, html, err := Render(Message{Kind: kind, JobID: "j1", Data: d})
			require.NoError(t, err)
			assert.NotContains(t, subject, " - -")
			assert.False(t, strings.HasSuffix(subject, " - "), subject)
			assert.NotContains(t, text, "Resolution:")
			assert.NotContains(t, html, "Job page")
			assert.NotContains(t, text, "  ", "no holes left by missing values")
			switch kind {
			case KindFailedRefunded:
				assert.Contains(t, text, "EUR 5.00")
				assert.Contains(t, text, defaultReason)
			case KindPaymentProcessing:
				assert.Contains(t, text, "EUR 5.00")
				assert.NotContains(t, html, "Follow the status", "no button without a job page")
			case KindRefundAttention:
				assert.Contains(t, text, "EUR 5.00")
				assert.Contains(t, text, defaultReason)
				assert.Contains(t, text, "Stripe's last refusal: (none recorded)")
				assert.NotContains(t, text, "Stripe payment:")
				assert.NotContains(t, text, "search for")
				for _, p := range customerLayout {
					assert.NotContains(t, text+html, p)
				}
			}
		})
	}
}

func TestRenderEscapesHostileValues(t *testing.T) {
	d := testData()
	d.SiteName = `<script>alert("site")</script>`
	d.Resolution = `<b onmouseover="x()">4x</b>`
	d.DownloadURL = `https://img.example.com/d?x="><img src=x onerror=alert(1)>`
	d.JobURL = `https://img.example.com/j?'><svg onload=alert(2)>`
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			subject, text, html, err := Render(Message{Kind: kind, JobID: `<i>j</i>`, Data: d})
			require.NoError(t, err)
			for _, bad := range []string{"<script", "<b ", "<img", "<svg", "<i>", `x="><`, `?'><`, "onerror=alert(1)>"} {
				assert.NotContains(t, html, bad)
			}
			assert.Contains(t, html, "&lt;script&gt;")
			assert.Contains(t, subject, `<script>alert("site")</script>`, "the subject is plain text")
			assert.Contains(t, text, `<script>alert("site")</script>`, "the text part is plain text")
		})
	}
}

func TestRenderNewlinesCannotInjectHeadersOrLines(t *testing.T) {
	d := testData()
	d.SiteName = "Shop\r\nBcc: victim@example.com"
	d.Resolution = "4x\n\nFAKE: paragraph"
	subject, text, _, err := Render(Message{Kind: KindImageReady, JobID: "j1", Data: d})
	require.NoError(t, err)
	assert.NotContains(t, subject, "\n")
	assert.NotContains(t, subject, "\r")
	assert.NotContains(t, text, "\nFAKE")
	assert.NotContains(t, text, "\nBcc")
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		edit func(*MessageData)
		want string
	}{
		{"unknown kind", "nope", nil, "unknown kind"},
		{"ready without link", KindImageReady, func(d *MessageData) { d.DownloadURL = "" }, "DownloadURL is required"},
		{"ready without expiry", KindImageReady, func(d *MessageData) { d.ExpiresAt = time.Time{} }, "ExpiresAt is required"},
		{"reminder without link", KindExpiringSoon, func(d *MessageData) { d.DownloadURL = "" }, "DownloadURL is required"},
		{"paid without amount", KindPaymentReceived, func(d *MessageData) { d.AmountCents = 0 }, "amount paid is required"},
		{"paid without job page", KindPaymentReceived, func(d *MessageData) { d.JobURL = "" }, "JobURL is required"},
		{"refund without amount", KindFailedRefunded, func(d *MessageData) { d.AmountCents = 0 }, "amount refunded is required"},
		{"processing without amount", KindPaymentProcessing, func(d *MessageData) { d.AmountCents = 0 }, "amount paid is required"},
		{"processing with a bad job page", KindPaymentProcessing, func(d *MessageData) { d.JobURL = "javascript:alert(1)" }, "absolute http(s) URL"},
		{"attention without amount", KindRefundAttention, func(d *MessageData) { d.AmountCents = 0 }, "amount owed is required"},
		{"attention with a bad currency", KindRefundAttention, func(d *MessageData) { d.Currency = "" }, "invalid currency"},
		{"javascript link", KindImageReady, func(d *MessageData) { d.DownloadURL = "javascript:alert(1)" }, "absolute http(s) URL"},
		{"server path as link", KindImageReady, func(d *MessageData) { d.DownloadURL = "/var/www/uploads/a.png" }, "absolute http(s) URL"},
		{"link with credentials", KindImageReady, func(d *MessageData) { d.DownloadURL = "https://u:p@x.example/d" }, "absolute http(s) URL"},
		{"bad currency", KindFailedRefunded, func(d *MessageData) { d.Currency = "dollars" }, "invalid currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testData()
			if tt.edit != nil {
				tt.edit(&d)
			}
			_, _, _, err := Render(Message{Kind: tt.kind, JobID: "j1", Data: d})
			require.ErrorContains(t, err, tt.want)
			assert.ErrorIs(t, err, errInvalidMessage)
		})
	}
}

func TestFormatTime(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skipf("no tz database: %v", err)
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	require.NoError(t, err)
	saoPaulo, err := time.LoadLocation("America/Sao_Paulo")
	require.NoError(t, err)
	tests := []struct {
		in   time.Time
		want string
	}{
		{testExpiry, "Fri 27 Nov 2026 21:37 UTC"},
		{time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), "Fri 2 Jan 2026 03:04 UTC"},
		{testExpiry.In(paris), "Fri 27 Nov 2026 22:37 CET (UTC+01:00)"},
		{testExpiry.In(kolkata), "Sat 28 Nov 2026 03:07 IST (UTC+05:30)"},
		{testExpiry.In(saoPaulo), "Fri 27 Nov 2026 18:37 UTC-03:00"},
		{testExpiry.In(time.FixedZone("", -4*3600)), "Fri 27 Nov 2026 17:37 UTC-04:00"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, FormatTime(tt.in))
	}
}

func TestFormatAmount(t *testing.T) {
	tests := []struct {
		minor    int64
		currency string
		want     string
	}{
		{384, "usd", "USD 3.84"},
		{5, "EUR", "EUR 0.05"},
		{100000, "gbp", "GBP 1000.00"},
		{500, "jpy", "JPY 500"},
		{1234, "KWD", "KWD 1.234"},
		{-250, "usd", "USD -2.50"},
	}
	for _, tt := range tests {
		got, err := FormatAmount(tt.minor, tt.currency)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
	for _, bad := range []string{"", "us", "usdd", "u$d"} {
		_, err := FormatAmount(1, bad)
		assert.Error(t, err, bad)
	}
}

func TestFriendlyReason(t *testing.T) {
	for reason, want := range map[string]string{
		"upsampler_failed":  "could not process this image",
		"upsampler_timeout": "took longer than the time allowed",
		"result_invalid":    "damaged or incomplete",
		"cancelled":         "cancelled",
		"terminated":        "stopped before it could finish",
		"UPSAMPLER_FAILED":  "could not process this image",
		"":                  defaultReason,
		"some_new_reason":   defaultReason,
	} {
		assert.Contains(t, FriendlyReason(reason), want, reason)
	}
	got := FriendlyReason("upsampler_failed: HTTP 500 from https://internal.example/api key=sk_live_x")
	assert.NotContains(t, got, "HTTP 500")
	assert.NotContains(t, got, "sk_live")
	assert.NotContains(t, FriendlyReason("/srv/data/secret: boom"), "/srv")
}
