// Command hires runs the image job service.
//
//	hires api       serve the REST API
//	hires worker    run the job workflows and activities
//	hires migrate   apply database migrations and exit
//	hires keys create --name NAME | list | revoke ID   manage site keys (admin API)
//	hires check URL    exit 0 if URL answers 200 (container health checks)
//	hires webhooks create --url U --events a,b   register an event endpoint (prints its secret)
//	hires webhooks rotate ID                     issue a new secret for an endpoint
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"hires/api"
	"hires/internal/config"
	"hires/internal/store"
	"hires/worker"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger, err := newLogger(os.Stderr, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hires:", err)
		os.Exit(1)
	}
	slog.SetDefault(logger)

	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "api":
		err = withConfig(config.RoleAPI, func(c config.Config) error { return api.Run(ctx, c, logger) })
	case "worker":
		err = withConfig(config.RoleWorker, func(c config.Config) error { return worker.Run(ctx, c, logger) })
	case "migrate":
		err = migrate(ctx)
	case "keys":
		err = keys(ctx, args)
	case "check":
		err = check(ctx, args)
	case "webhooks":
		err = webhooks(ctx, args)
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hires:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: hires api | worker | migrate | keys create|list|revoke | webhooks create|rotate | check URL")
}

// newLogger writes to w at LOG_LEVEL (debug, info, warn, error; default
// info), as JSON when LOG_FORMAT=json, else as text. A bad LOG_LEVEL is an
// error naming it.
func newLogger(w io.Writer, getenv func(string) string) (*slog.Logger, error) {
	level, err := config.ParseLogLevel(getenv("LOG_LEVEL"))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if getenv("LOG_FORMAT") == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func withConfig(role config.Role, run func(config.Config) error) error {
	c, err := config.Load(role)
	if err != nil {
		return err
	}
	return run(c)
}

func migrate(ctx context.Context) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return errors.New("config: DATABASE_URL is required")
	}
	return store.Migrate(ctx, url)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// check exits 0 when URL answers 200: a container health check for images
// that have no curl (e.g. `hires check http://127.0.0.1:8080/readyz`).
func check(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("usage: hires check URL")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", args[0], resp.StatusCode)
	}
	return nil
}
