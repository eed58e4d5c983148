package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"time"

	"hires/internal/adminclient"
)

// webhooks manages integration-event endpoints through the admin API:
//
//	hires webhooks create --url U --events a,b [--description D]
//	hires webhooks rotate ENDPOINT_ID
//
// It prints the endpoint as JSON, with its secret: the only time it is shown.
func webhooks(ctx context.Context, args []string) error {
	const usage = "usage: hires webhooks create --url URL --events TYPE,... [--description TEXT] | rotate ENDPOINT_ID"
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs, apiURL := adminFlags("webhooks", args[0])
	url := fs.String("url", "", "endpoint URL (create)")
	types := fs.String("events", "", "comma-separated event types (create)")
	desc := fs.String("description", "", "what the endpoint is for (create)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := adminClient(*apiURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var ep adminclient.Endpoint
	switch {
	case args[0] == "create" && fs.NArg() == 0 && *url != "" && *types != "":
		ep, err = c.Create(ctx, *url, *desc, strings.Split(*types, ","))
	case args[0] == "rotate" && fs.NArg() == 1:
		ep, err = c.Rotate(ctx, fs.Arg(0))
	default:
		return errors.New(usage)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(ep)
}
