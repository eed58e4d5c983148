package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"hires/api"
	"hires/internal/adminclient"
)

// keys manages site keys through the admin API:
//
//	hires keys create --name NAME [--site SITE] [--create-per-minute N]
//	hires keys list
//	hires keys revoke KEY_ID
func keys(ctx context.Context, args []string) error {
	const usage = "usage: hires keys create --name NAME [--site SITE] [--create-per-minute N] | list | revoke KEY_ID  [-api URL]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs, apiURL := adminFlags("keys", args[0])
	name := fs.String("name", "", "what the key is for, e.g. the shop's server (create)")
	site := fs.String("site", "", "the site the key belongs to (create; default \""+api.DefaultSite+"\")")
	perMinute := fs.Int("create-per-minute", 0, "jobs this key may create a minute (create; default RATE_LIMIT_CREATE)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	c, err := adminClient(*apiURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch args[0] {
	case "create":
		if fs.NArg() != 0 {
			return errors.New(usage)
		}
		req := api.CreateSiteKeyRequest{Name: *name, Site: *site}
		if *perMinute != 0 {
			req.CreatePerMinute = perMinute
		}
		k, err := c.CreateSiteKey(ctx, req)
		if err != nil {
			return err
		}
		fmt.Printf("Created key %s (%s) for site %q.\nThe key is shown only now; keep it in the site's secret settings:\n\n  %s\n", k.ID, k.Name, k.Site, k.Key)
		return nil
	case "list":
		keys, err := c.SiteKeys(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tSITE\tNAME\tKEY\tCREATED\tLAST USED\tREVOKED")
		for _, k := range keys {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Site, k.Name, k.Prefix,
				k.CreatedAt.Format(time.RFC3339), when(k.LastUsedAt), when(k.RevokedAt))
		}
		return w.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New(usage)
		}
		k, err := c.RevokeSiteKey(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Printf("Revoked key %s (%s) of site %q at %s.\n", k.ID, k.Name, k.Site, when(k.RevokedAt))
		return nil
	}
	return errors.New(usage)
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// adminFlags are the flags of a command that calls the admin API: -api,
// and the ones the caller adds.
func adminFlags(cmd, sub string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(cmd+" "+sub, flag.ContinueOnError)
	return fs, fs.String("api", envOr("PUBLIC_BASE_URL", "http://127.0.0.1:8080"), "API base URL")
}

// adminClient calls the API at apiURL with ADMIN_TOKEN.
func adminClient(apiURL string) (adminclient.Client, error) {
	token := os.Getenv("ADMIN_TOKEN")
	if token == "" {
		return adminclient.Client{}, errors.New("ADMIN_TOKEN is not set: set it to the API's admin token")
	}
	return adminclient.Client{BaseURL: apiURL, Token: token}, nil
}
