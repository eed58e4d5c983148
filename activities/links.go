package activities

import (
	"net/url"

	"hires/internal/store"
	"hires/internal/token"
)

// Suffixes of the customer's page that Stripe Checkout sends them back to.
const (
	checkoutSuccess   = "&checkout=success"
	checkoutCancelled = "&checkout=cancelled"
)

// pageURL is job j's page for its customer, with the access token in it
// (plus suffix, e.g. checkoutSuccess). The token is derived here from
// ACCESS_TOKEN_SECRET, so no link ever travels through Temporal. A job
// created before tokens were derived has a token only its creator holds:
// for it alone, legacy, the link its workflow was started with, is used.
func (a *Activities) pageURL(j store.Job, suffix, legacy string) string {
	access := token.Access(a.AccessSecret, j.ID)
	if !token.Matches(access, j.AccessTokenHash) {
		return legacy
	}
	return a.PublicBaseURL + "/jobs/" + url.PathEscape(j.ID) + "?token=" + access + suffix
}
