package config

import (
	"log/slog"
	"strings"
	"testing"
)

func base() map[string]string {
	return map[string]string{
		"DATABASE_URL":          "postgres://localhost/hires",
		"STRIPE_SECRET_KEY":     "sk_test_123",
		"STRIPE_WEBHOOK_SECRET": "whsec_test",
		"ADMIN_TOKEN":           "admin-token-0123456789",
		"ACCESS_TOKEN_SECRET":   "access-token-secret-0123456789-abcdef",
		"SOURCE_HOSTS":          "images.example.com, cdn.example.com",
		"UPSAMPLER_API_KEY":     "up_key",
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		role    Role
		set     map[string]string
		wantErr string // substring; "" means success
	}{
		{"defaults are valid for the API", RoleAPI, nil, ""},
		{"defaults are valid for the worker", RoleWorker, nil, ""},
		{"missing database", RoleAPI, map[string]string{"DATABASE_URL": ""}, "DATABASE_URL is required"},
		{"API needs the webhook secret", RoleAPI, map[string]string{"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET is required"},
		{"worker does not need the webhook secret", RoleWorker, map[string]string{"STRIPE_WEBHOOK_SECRET": ""}, ""},
		{"worker needs the Upsampler key", RoleWorker, map[string]string{"UPSAMPLER_API_KEY": ""}, "UPSAMPLER_API_KEY is required"},
		{"malformed duration names the variable", RoleAPI, map[string]string{"PAYMENT_TIMEOUT": "soon"}, "PAYMENT_TIMEOUT has an invalid value"},
		{"too short duration", RoleAPI, map[string]string{"DOWNLOAD_TTL": "1ms"}, "DOWNLOAD_TTL must be at least"},
		{"payment window beyond Stripe's limit", RoleAPI, map[string]string{"PAYMENT_TIMEOUT": "25h"}, "PAYMENT_TIMEOUT must be at most 24h"},
		{"origin with a path", RoleAPI, map[string]string{"SITE_ORIGINS": "https://shop.example.com/page"}, "SITE_ORIGINS"},
		{"origins", RoleAPI, map[string]string{"SITE_ORIGINS": "https://shop.example.com, http://127.0.0.1:3000"}, ""},
		{"zero rate limit", RoleAPI, map[string]string{"RATE_LIMIT_CREATE": "0"}, "RATE_LIMIT_CREATE"},
		{"one workflow task slot", RoleWorker, map[string]string{"WORKER_MAX_CONCURRENT_WORKFLOW_TASKS": "1"}, "at least 2"},
		{"negative capacity", RoleWorker, map[string]string{"WORKER_MAX_CONCURRENT_ACTIVITIES": "-1"}, "must not be negative"},
		{"malformed markup", RoleAPI, map[string]string{"MARKUP_PERCENT": "lots"}, "MARKUP_PERCENT has an invalid value"},
		{"negative markup", RoleAPI, map[string]string{"MARKUP_PERCENT": "-5"}, "MARKUP_PERCENT must be between"},
		{"short admin token", RoleAPI, map[string]string{"ADMIN_TOKEN": "short"}, "ADMIN_TOKEN must be at least"},
		{"no source hosts", RoleAPI, map[string]string{"SOURCE_HOSTS": " , "}, "SOURCE_HOSTS is required"},
		{"relative public URL", RoleAPI, map[string]string{"PUBLIC_BASE_URL": "/jobs"}, "PUBLIC_BASE_URL"},
		{"bad currency", RoleAPI, map[string]string{"CURRENCY": "dollars"}, "CURRENCY"},
		{"no access token secret", RoleWorker, map[string]string{"ACCESS_TOKEN_SECRET": ""}, "ACCESS_TOKEN_SECRET is required"},
		{"short access token secret", RoleAPI, map[string]string{"ACCESS_TOKEN_SECRET": "short"}, "at least 32"},
		{"dev payments with a live key", RoleAPI, map[string]string{"DEV_PAYMENTS": "true", "STRIPE_SECRET_KEY": "sk_live_abc"}, "DEV_PAYMENTS must not be on with a live"},
		{"dev payments with a live restricted key", RoleAPI, map[string]string{"DEV_PAYMENTS": "true", "STRIPE_SECRET_KEY": "rk_live_abc"}, "DEV_PAYMENTS must not"},
		{"dev payments with a test key", RoleAPI, map[string]string{"DEV_PAYMENTS": "true", "STRIPE_SECRET_KEY": "sk_test_abc"}, ""},
		{"old proxy switch", RoleAPI, map[string]string{"TRUST_PROXY_HEADERS": "true"}, "TRUSTED_PROXIES"},
		{"trusted proxies", RoleAPI, map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7, ::1"}, ""},
		{"malformed trusted proxy", RoleAPI, map[string]string{"TRUSTED_PROXIES": "10.0.0.0/33"}, "TRUSTED_PROXIES"},
		{"zero page rate limit", RoleAPI, map[string]string{"RATE_LIMIT_PAGE": "0"}, "RATE_LIMIT_PAGE"},
		{"short idempotency memory", RoleAPI, map[string]string{"IDEMPOTENCY_KEY_TTL": "5s"}, "IDEMPOTENCY_KEY_TTL"},
		{"no secret overlap", RoleAPI, map[string]string{"WEBHOOK_SECRET_OVERLAP": "0s"}, ""},
		{"negative secret overlap", RoleAPI, map[string]string{"WEBHOOK_SECRET_OVERLAP": "-1h"}, "WEBHOOK_SECRET_OVERLAP"},
		{"secret overlap beyond 30 days", RoleAPI, map[string]string{"WEBHOOK_SECRET_OVERLAP": "721h"}, "WEBHOOK_SECRET_OVERLAP"},
		{"debug logs", RoleWorker, map[string]string{"LOG_LEVEL": "debug"}, ""},
		{"unknown log level", RoleAPI, map[string]string{"LOG_LEVEL": "verbose"}, "LOG_LEVEL must be debug, info, warn or error"},
		{"unknown log level for the worker", RoleWorker, map[string]string{"LOG_LEVEL": "warning"}, "LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := base()
			for k, v := range tt.set {
				env[k] = v
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			c, err := Load(tt.role)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			_ = c
		})
	}
}

func TestLoadNormalises(t *testing.T) {
	for k, v := range base() {
		t.Setenv(k, v)
	}
	t.Setenv("PUBLIC_BASE_URL", "https://shop.example.com/")
	t.Setenv("CURRENCY", "EUR")
	c, err := Load(RoleAPI)
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicBaseURL != "https://shop.example.com" || c.Currency != "eur" {
		t.Fatalf("got %q %q", c.PublicBaseURL, c.Currency)
	}
	if len(c.SourceHosts) != 2 || c.SourceHosts[1] != "cdn.example.com" {
		t.Fatalf("source hosts %q", c.SourceHosts)
	}
}

func TestErrorsNeverContainSecrets(t *testing.T) {
	for k, v := range base() {
		t.Setenv(k, v)
	}
	t.Setenv("PAYMENT_TIMEOUT", "sk_live_secretvalue")
	_, err := Load(RoleAPI)
	if err == nil || strings.Contains(err.Error(), "secretvalue") {
		t.Fatalf("error leaks the value: %v", err)
	}
}

func TestParseLogLevel(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"", slog.LevelInfo, false},
		{"debug", slog.LevelDebug, false},
		{"info", slog.LevelInfo, false},
		{"warn", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{" DEBUG ", slog.LevelDebug, false},
		{"Warn", slog.LevelWarn, false},
		{"warning", 0, true},
		{"trace", 0, true},
		{"info+2", 0, true},
		{"0", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLogLevel(tc.in)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") {
					t.Fatalf("ParseLogLevel(%q) = %v, %v; want an error naming LOG_LEVEL", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseLogLevel(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestLogLevelDefaultsToInfo(t *testing.T) {
	c, err := LoadEnv(RoleAPI, base())
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "info" {
		t.Fatalf("LOG_LEVEL default %q, want info", c.LogLevel)
	}
}
