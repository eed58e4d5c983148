package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The product's binary holds the product only: the local stack, the
// stand-ins, the test, bench and chaos drivers (dev/) stay out of it, and
// so does Temporal's test suite.
func TestBinaryLeavesOutTheTooling(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list found %d packages: %v", len(deps), deps)
	}
	for _, p := range deps {
		for _, banned := range []string{"hires/dev/", "go.temporal.io/sdk/testsuite"} {
			if strings.HasPrefix(p, banned) {
				t.Errorf("the binary depends on %s", p)
			}
		}
	}
}
