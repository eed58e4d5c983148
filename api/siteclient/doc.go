// Package siteclient is a Go client for the selling site's routes (creating
// and reading jobs, downloads), generated from api/openapi.yaml by
// oapi-codegen (pinned as a tool in go.mod). A site in another language
// generates its own from the same document, served at /v1/openapi.yaml.
// The end-to-end tests drive the API through it, and a test fails when it
// is out of date with the document.
//
//	c, _ := siteclient.NewClientWithResponses("https://hires.example.com",
//		siteclient.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
//			r.Header.Set("Authorization", "Bearer "+siteKey)
//			return nil
//		}))
//	a, _ := c.CreateJobWithResponse(ctx, &siteclient.CreateJobParams{IdempotencyKey: &orderID}, body)
package siteclient

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../openapi.yaml
