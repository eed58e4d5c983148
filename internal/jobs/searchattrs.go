package jobs

import "go.temporal.io/sdk/temporal"

// Typed search attributes, upserted on every status change so that admins can
// filter jobs in the Temporal Web UI, e.g. JobStatus="completed". None holds
// customer data: admins find a job by email with GET /v1/admin/jobs?email=.
var (
	AttrJobStatus     = temporal.NewSearchAttributeKeyKeyword("JobStatus")
	AttrPaymentStatus = temporal.NewSearchAttributeKeyKeyword("PaymentStatus")
	AttrFailureReason = temporal.NewSearchAttributeKeyKeyword("FailureReason")
)

// SearchAttributes lists the attributes that must be registered on the
// Temporal namespace, as name=type pairs for `temporal server start-dev
// --search-attribute` and `temporal operator search-attribute create`.
var SearchAttributes = []string{
	"JobStatus=Keyword",
	"PaymentStatus=Keyword",
	"FailureReason=Keyword",
}
