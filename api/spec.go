package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"
)

// openapiYAML is the API's OpenAPI 3.1 document, as committed. The tests
// (internal/apispec) check every request they make, and its answer,
// against it, and that it names exactly the routes newEcho registers.
//
//go:embed openapi.yaml
var openapiYAML []byte

// openapiJSON is the same document as JSON.
var openapiJSON = mustJSON(openapiYAML)

// OpenAPI returns the API's OpenAPI 3.1 document (YAML), as served at
// GET /v1/openapi.yaml.
func OpenAPI() []byte { return bytes.Clone(openapiYAML) }

func mustJSON(doc []byte) []byte {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		panic(fmt.Sprintf("api: openapi.yaml: %v", err))
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("api: openapi.yaml as JSON: %v", err))
	}
	return b
}

func serveOpenAPIYAML(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openapiYAML)
}

func serveOpenAPIJSON(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openapiJSON)
}
