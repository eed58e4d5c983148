package siteclient

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed client is what the generator makes of the committed
// document: change the document, run `go generate ./api/siteclient`.
func TestClientIsGeneratedFromTheDocument(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the generator")
	}
	dir := t.TempDir()
	cfg, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("output: siteclient.gen.go"), []byte("output: "+filepath.Join(dir, "gen.go")), 1)
	if err := os.WriteFile(filepath.Join(dir, "cfg.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "oapi-codegen", "-config", filepath.Join(dir, "cfg.yaml"), "../openapi.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, out)
	}
	want, err := os.ReadFile(filepath.Join(dir, "gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("siteclient.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("siteclient.gen.go is not what api/openapi.yaml generates: run go generate ./api/siteclient")
	}
}
