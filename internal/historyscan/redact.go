package historyscan

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Placeholders the Redactor writes. The detectors know them: a redacted
// history scans clean.
const (
	// PlaceholderDomain is the domain of placeholder addresses
	// (customer-<n>@redacted.invalid; .invalid is reserved, RFC 2606).
	PlaceholderDomain = "redacted.invalid"
	// placeholderTokenChar fills a token's placeholder, of the token's length.
	placeholderTokenChar = "x"
)

func isPlaceholderEmail(s string) bool {
	return strings.HasSuffix(strings.ToLower(s), "@"+PlaceholderDomain)
}

func isPlaceholderToken(s string) bool {
	return s != "" && strings.Trim(s, placeholderTokenChar) == ""
}

// Redacted reports whether s, a value of a field that carried customer
// data, holds only placeholders: a placeholder address, or a link whose
// token values are all placeholders and which has no address in it.
func Redacted(s string) bool {
	placeholders := 0
	for _, m := range emailRE.FindAllString(s, -1) {
		if !isPlaceholderEmail(m) {
			return false
		}
		placeholders++
	}
	for _, m := range tokenParamRE.FindAllStringSubmatch(s, -1) {
		if !isPlaceholderToken(m[1]) {
			return false
		}
		placeholders++
	}
	return placeholders > 0
}

// Redactor replaces customer data in recorded histories with
// placeholders: each email address with customer-<n>@redacted.invalid, the
// same address always with the same placeholder (search attributes are
// compared on replay with the signals they came from), and token values
// and token-shaped strings with as many x's. Nothing else changes.
type Redactor struct {
	emails map[string]string
}

// NewRedactor returns a Redactor with no addresses seen yet.
func NewRedactor() *Redactor { return &Redactor{emails: map[string]string{}} }

// String redacts one decoded string.
func (r *Redactor) String(s string) string {
	s = emailRE.ReplaceAllStringFunc(s, func(m string) string {
		if isPlaceholderEmail(m) {
			return m
		}
		key := strings.ToLower(m)
		p, ok := r.emails[key]
		if !ok {
			p = fmt.Sprintf("customer-%d@%s", len(r.emails)+1, PlaceholderDomain)
			r.emails[key] = p
		}
		return p
	})
	s = tokenParamRE.ReplaceAllStringFunc(s, func(m string) string {
		name, v, _ := strings.Cut(m, "=")
		return name + "=" + strings.Repeat(placeholderTokenChar, len(v))
	})
	return tokenRunRE.ReplaceAllStringFunc(s, func(m string) string {
		if tokenShaped(m) {
			return strings.Repeat(placeholderTokenChar, len(m))
		}
		return m
	})
}

// JSON redacts every string literal of a JSON text in place, re-encoded as
// encoding/json (the SDK's converter) encodes it; the rest stays byte for
// byte.
func (r *Redactor) JSON(data []byte) []byte {
	var out bytes.Buffer
	for i := 0; i < len(data); {
		if data[i] != '"' {
			out.WriteByte(data[i])
			i++
			continue
		}
		j := i + 1
		for j < len(data) && data[j] != '"' {
			if data[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(data) { // not JSON after all: leave the rest alone
			out.Write(data[i:])
			break
		}
		lit := data[i : j+1]
		var s string
		if err := json.Unmarshal(lit, &s); err == nil {
			if red := r.String(s); red != s {
				lit, _ = json.Marshal(red)
			}
		}
		out.Write(lit)
		i = j + 1
	}
	return out.Bytes()
}

// Payload redacts one payload's data, decoded by its encoding.
func (r *Redactor) Payload(p *commonpb.Payload) []byte {
	switch string(p.GetMetadata()["encoding"]) {
	case "binary/null":
		return p.GetData()
	case "json/plain", "json/protobuf":
		if json.Valid(p.GetData()) {
			return r.JSON(p.GetData())
		}
	}
	return []byte(r.String(string(p.GetData())))
}

// RedactFile rewrites a history JSON file with its payloads redacted. The
// file is edited as text, payload by payload (each base64 `data` value
// replaced), so its layout and everything that is not customer data stay
// as they were. It reports how many payloads changed.
func (r *Redactor) RedactFile(path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("historyscan: %w", err)
	}
	h, err := ReadFile(path)
	if err != nil {
		return 0, err
	}
	text := string(raw)
	changed := 0
	done := map[string]bool{} // payloads repeated in the file are replaced at once
	for _, p := range payloads(h) {
		red := r.Payload(p)
		if bytes.Equal(red, p.GetData()) {
			continue
		}
		old := `"` + base64.StdEncoding.EncodeToString(p.GetData()) + `"`
		if done[old] {
			changed++
			continue
		}
		done[old] = true
		if !strings.Contains(text, old) {
			return 0, fmt.Errorf("historyscan: %s: a payload's data is not in the file as standard base64", path)
		}
		text = strings.ReplaceAll(text, old, `"`+base64.StdEncoding.EncodeToString(red)+`"`)
		changed++
	}
	if changed == 0 {
		return 0, nil
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return 0, fmt.Errorf("historyscan: %w", err)
	}
	return changed, nil
}

// payloads lists every payload of h, wherever it is.
func payloads(h *historypb.History) []*commonpb.Payload {
	var out []*commonpb.Payload
	var walk func(m protoreflect.Message)
	visit := func(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
		if fd.Kind() == protoreflect.MessageKind {
			walk(v.Message())
		}
	}
	walk = func(m protoreflect.Message) {
		if m.Descriptor().FullName() == payloadName {
			out = append(out, m.Interface().(*commonpb.Payload))
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsMap():
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					visit(fd.MapValue(), mv)
					return true
				})
			case fd.IsList():
				for i := range v.List().Len() {
					visit(fd, v.List().Get(i))
				}
			default:
				visit(fd, v)
			}
			return true
		})
	}
	for _, e := range h.GetEvents() {
		walk(e.ProtoReflect())
	}
	return out
}
