// Package eventschema checks event bodies against the catalogue's JSON
// Schemas (docs/events/<type>.schema.json, draft 2020-12), so that tests
// hold the code to what receivers are promised.
package eventschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"hires/internal/events"
)

// Validator holds the compiled schema of every event type.
type Validator struct {
	schemas map[events.Type]*jsonschema.Schema
}

// Dir is docs/events of the source tree this package was built from:
// tests run where the sources are.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "docs", "events")
}

// Load compiles <dir>/<type>.schema.json for every type of the catalogue;
// a type without its schema is an error. Formats (date-time) are asserted.
func Load(dir string) (*Validator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	v := &Validator{schemas: map[events.Type]*jsonschema.Schema{}}
	for _, t := range events.Types {
		path := filepath.Join(dir, string(t)+".schema.json")
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("eventschema: %w", err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("eventschema: %s: %w", path, err)
		}
		url := "file://" + filepath.ToSlash(path)
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("eventschema: %s: %w", path, err)
		}
		if v.schemas[t], err = c.Compile(url); err != nil {
			return nil, fmt.Errorf("eventschema: %s: %w", path, err)
		}
	}
	return v, nil
}

// Validate checks one delivered body against the schema of its type.
func (v *Validator) Validate(body []byte) error {
	var head struct {
		Type events.Type `json:"type"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("eventschema: not JSON: %w", err)
	}
	s, ok := v.schemas[head.Type]
	if !ok {
		return fmt.Errorf("eventschema: no schema for type %q", head.Type)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("eventschema: not JSON: %w", err)
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("eventschema: %s: %w", head.Type, err)
	}
	return nil
}
