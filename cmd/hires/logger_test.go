package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		name, level, format string
		wantErr             bool
		logged              []string // of debug, info, warn, error
	}{
		{name: "default is info", logged: []string{"info", "warn", "error"}},
		{name: "debug", level: "debug", logged: []string{"debug", "info", "warn", "error"}},
		{name: "info", level: "info", logged: []string{"info", "warn", "error"}},
		{name: "warn", level: "warn", logged: []string{"warn", "error"}},
		{name: "error", level: "error", logged: []string{"error"}},
		{name: "upper case", level: "WARN", logged: []string{"warn", "error"}},
		{name: "json debug", level: "debug", format: "json", logged: []string{"debug", "info", "warn", "error"}},
		{name: "json error", level: "error", format: "json", logged: []string{"error"}},
		{name: "unknown level", level: "verbose", wantErr: true},
		{name: "unknown level with json", level: "warning", format: "json", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"LOG_LEVEL": tc.level, "LOG_FORMAT": tc.format}
			var buf bytes.Buffer
			logger, err := newLogger(&buf, func(k string) string { return env[k] })
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") {
					t.Fatalf("error %v, want one naming LOG_LEVEL", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			logger.Debug("debug")
			logger.Info("info")
			logger.Warn("warn")
			logger.Error("error")
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				if line == "" {
					continue
				}
				if tc.format == "json" {
					var rec struct{ Msg string }
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Fatalf("not JSON: %q", line)
					}
					got = append(got, rec.Msg)
					continue
				}
				_, msg, ok := strings.Cut(line, " msg=")
				if !ok {
					t.Fatalf("not a text record: %q", line)
				}
				got = append(got, msg)
			}
			if strings.Join(got, ",") != strings.Join(tc.logged, ",") {
				t.Fatalf("logged %q, want %q", got, tc.logged)
			}
		})
	}
}
