// Package historyscan finds customer data and secrets in Temporal workflow
// histories. It decodes every payload of every event (workflow and
// activity inputs and results, signals, updates, queries' answers kept in
// failures, search attributes, memos, headers) and looks in them, and in
// the events' own text fields, for values it was given (tokens, secrets,
// addresses) and for what looks like customer data whatever its value:
// email addresses, `token=` query values, access- and download-token-shaped
// strings, and fields named like the ones that used to carry them.
package historyscan

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Detectors, as reported in Finding.Detector.
const (
	DetectSecret = "secret" // a value given to the Scanner
	DetectEmail  = "email"  // an email address
	DetectToken  = "token"  // a token= query value, or a token-shaped string
	DetectField  = "field"  // a field that carried customer data, set
)

// Finding is one match in a history.
type Finding struct {
	EventID   int64
	EventType string
	// Path is where in the event: proto fields, then the payload's JSON
	// keys, e.g. workflowExecutionSignaledEventAttributes.input.payloads[0].CustomerEmail.
	Path     string
	Detector string
	// Label names the secret (DetectSecret) or the field (DetectField).
	Label string
	// Match is the text that matched. Print a Finding with String, which
	// masks it: test logs must not repeat the secrets they found.
	Match string
}

func (f Finding) String() string {
	what := f.Detector
	if f.Label != "" {
		what += " " + f.Label
	}
	return fmt.Sprintf("event %d (%s) %s: %s %s", f.EventID, f.EventType, f.Path, what, Mask(f.Match))
}

// Mask shows the first characters of s and its length, no more.
func Mask(s string) string {
	n := min(4, len(s)/4)
	return strconv.Quote(s[:n]+"…") + fmt.Sprintf(" (%d bytes)", len(s))
}

// Scanner looks for its secrets and for customer data in histories.
type Scanner struct {
	secrets map[string]string // value -> label
}

// New returns a Scanner that also looks for the given values (labelled
// "secret"); add more, labelled, with Add.
func New(secrets ...string) *Scanner {
	s := &Scanner{secrets: map[string]string{}}
	for _, v := range secrets {
		s.Add("secret", v)
	}
	return s
}

// minSecret is the shortest value looked for: shorter ones would match
// by chance (and no secret of ours is that short).
const minSecret = 6

// Add registers a value that must not appear, with a label naming it.
// Values shorter than minSecret characters are ignored.
func (s *Scanner) Add(label, value string) {
	if len(value) >= minSecret {
		s.secrets[value] = label
	}
}

// ScanFile reads a history in Temporal's JSON form (as `temporal workflow
// show --output json` and the replay tests keep them) and scans it.
func (s *Scanner) ScanFile(path string) ([]Finding, error) {
	h, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return s.Scan(h), nil
}

// ReadFile reads a history in Temporal's JSON form.
func ReadFile(path string) (*historypb.History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("historyscan: %w", err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		return nil, fmt.Errorf("historyscan: read %s: %w", path, err)
	}
	return h, nil
}

// Scan returns every finding in h, in event order.
func (s *Scanner) Scan(h *historypb.History) []Finding {
	var out []Finding
	for _, e := range h.GetEvents() {
		w := walker{s: s, event: e}
		w.message(e.ProtoReflect(), "")
		out = append(out, w.found...)
	}
	return out
}

type walker struct {
	s     *Scanner
	event *historypb.HistoryEvent
	found []Finding
}

func (w *walker) add(path, detector, label, match string) {
	w.found = append(w.found, Finding{EventID: w.event.GetEventId(), EventType: w.event.GetEventType().String(),
		Path: path, Detector: detector, Label: label, Match: match})
}

var payloadName = (&commonpb.Payload{}).ProtoReflect().Descriptor().FullName()

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// message walks a proto message: payloads are decoded, text is checked.
func (w *walker) message(m protoreflect.Message, path string) {
	if m.Descriptor().FullName() == payloadName {
		w.payload(m.Interface().(*commonpb.Payload), path, "")
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := join(path, fd.JSONName())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				w.value(fd.MapValue(), mv, p+"."+k.String(), k.String())
				return true
			})
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				w.value(fd, l.Get(i), fmt.Sprintf("%s[%d]", p, i), "")
			}
		default:
			w.value(fd, v, p, "")
		}
		return true
	})
}

// value checks one field's value; key is its map key, if any (search
// attributes, memo fields and headers are maps of payloads by name).
func (w *walker) value(fd protoreflect.FieldDescriptor, v protoreflect.Value, path, key string) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if m := v.Message(); m.Descriptor().FullName() == payloadName {
			w.payload(m.Interface().(*commonpb.Payload), path, key)
		} else {
			w.message(m, path)
		}
	case protoreflect.StringKind:
		// A worker's identity is pid@host: not an address, and no secret.
		if fd.Name() != "identity" {
			w.text(path, v.String())
		}
	case protoreflect.BytesKind:
		w.text(path, string(v.Bytes()))
	}
}

// payload decodes one payload by its encoding and checks what it holds.
func (w *walker) payload(p *commonpb.Payload, path, key string) {
	data := p.GetData()
	raw := string(data)
	switch string(p.GetMetadata()["encoding"]) {
	case "binary/null":
		return
	case "json/plain", "json/protobuf":
		var v any
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err == nil {
			if key != "" {
				w.field(path, key, v)
			}
			before := len(w.found)
			w.json(v, path)
			// Also in the encoded text (a key, an escaped form), unless
			// already found in a decoded value.
			for sv, label := range w.s.secrets {
				if strings.Contains(raw, sv) && !slices.ContainsFunc(w.found[before:], func(f Finding) bool { return f.Match == sv }) {
					w.add(path, DetectSecret, label, sv)
				}
			}
			return
		}
	}
	// binary/plain, binary/protobuf, anything else: its bytes as text.
	if key != "" && raw != "" {
		w.field(path, key, raw)
	}
	w.text(path, raw)
}

// json walks a decoded JSON value.
func (w *walker) json(v any, path string) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := join(path, k)
			w.field(p, k, v[k])
			w.json(v[k], p)
		}
	case []any:
		for i, x := range v {
			w.json(x, fmt.Sprintf("%s[%d]", path, i))
		}
	case string:
		w.text(path, v)
	}
}

// fieldNames are the names of the fields that carried customer data
// (lower case, without underscores).
var fieldNames = []string{"email", "customeremail", "pageurl", "successurl", "cancelurl"}

// field reports a field named like fieldNames that holds anything but a
// redacted placeholder.
func (w *walker) field(path, key string, v any) {
	name := strings.ToLower(strings.ReplaceAll(key, "_", ""))
	if !slices.Contains(fieldNames, name) {
		return
	}
	var s string
	switch v := v.(type) {
	case nil:
		return
	case string:
		s = v
	default:
		b, _ := json.Marshal(v)
		s = string(b)
		if s == "[]" || s == "{}" {
			return
		}
	}
	if s != "" && !Redacted(s) {
		w.add(path, DetectField, key, s)
	}
}

// text checks a string for the secrets and the generic detectors.
func (w *walker) text(path, s string) {
	if s == "" {
		return
	}
	w.secrets(path, s)
	if !utf8.ValidString(s) {
		return
	}
	for _, ix := range emailRE.FindAllStringIndex(s, -1) {
		if m := s[ix[0]:ix[1]]; !isPlaceholderEmail(m) && !isIdentity(s, ix) {
			w.add(path, DetectEmail, "", m)
		}
	}
	var params []string
	for _, m := range tokenParamRE.FindAllStringSubmatch(s, -1) {
		if v := m[1]; v != "" && !isPlaceholderToken(v) {
			w.add(path, DetectToken, "token=", v)
			params = append(params, v)
		}
	}
	for _, m := range tokenRunRE.FindAllString(s, -1) {
		if tokenShaped(m) && !slices.Contains(params, m) {
			w.add(path, DetectToken, "token-shaped", m)
		}
	}
}

// isIdentity tells a worker's identity quoted in an error ("<pid>@<host>@",
// the SDK's default) from an address.
func isIdentity(s string, ix []int) bool {
	local, _, _ := strings.Cut(s[ix[0]:ix[1]], "@")
	return ix[1] < len(s) && s[ix[1]] == '@' && strings.Trim(local, "0123456789") == ""
}

func (w *walker) secrets(path, s string) {
	for v, label := range w.s.secrets {
		if strings.Contains(s, v) {
			w.add(path, DetectSecret, label, v)
		}
	}
}

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
	// A token query parameter's value, up to the next separator (a JSON
	// payload decoded first, so & is no longer \u0026).
	tokenParamRE = regexp.MustCompile(`[?&]token=([^&#\s"'<>]*)`)
	tokenRunRE   = regexp.MustCompile(`[A-Za-z0-9_-]+`)
	stripeIDRE   = regexp.MustCompile(`^[a-z]{2,8}_`)
	hexRE        = regexp.MustCompile(`^[0-9a-f]+$`)
)

// tokenShaped tells an access token (43 characters of base64url: an
// HMAC-SHA-256, or 43 random alphanumerics before) or a download token or
// callback secret (64 or 43 random alphanumerics) from the other long
// strings of a history: Stripe IDs (prefixed), SHA-256 sums (hex), UUIDs.
func tokenShaped(s string) bool {
	switch {
	case len(s) != 43 && len(s) != 64,
		isPlaceholderToken(s),
		stripeIDRE.MatchString(s),
		hexRE.MatchString(strings.ToLower(s)):
		return false
	case len(s) == 64 && strings.ContainsAny(s, "_-"):
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return r >= '0' && r <= '9' }) >= 0 &&
		strings.IndexFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }) >= 0
}
