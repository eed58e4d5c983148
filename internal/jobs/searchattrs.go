package jobs

import "go.temporal.io/sdk/temporal"

// Typed search attributes, upserted on every status change so that admins can
// filter jobs in the Temporal Web UI, e.g. JobStatus="completed". None holds
// customer data: admins find a job by email with GET /v1/admin/jobs?email=.
var (
	AttrJobStatus     = temporal.NewSearchAttributeKeyKeyword("JobStatus")
	AttrPaymentStatus = temporal.NewSearchAttributeKeyKeyword("PaymentStatus")
	AttrFailureReason = temporal.NewSearchAttributeKeyKeyword("FailureReason")
	// Deprecated: AttrCustomerEmail is upserted only when replaying
	// histories of workflows paid before customer data left Temporal (their
	// payment event carried the email); never set for new workflows, and no
	// longer registered on new namespaces.
	AttrCustomerEmail = temporal.NewSearchAttributeKeyKeyword("CustomerEmail")
)

// SearchAttributes lists the attributes that must be registered on the
// Temporal namespace, as name=type pairs for `temporal server start-dev
// --search-attribute` and `temporal operator search-attribute create`.
// A namespace that ran workflows of older versions keeps CustomerEmail
// registered until those workflows have ended.
var SearchAttributes = []string{
	"JobStatus=Keyword",
	"PaymentStatus=Keyword",
	"FailureReason=Keyword",
}
