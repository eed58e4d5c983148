package workflows_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"hires/internal/historyscan"
)

// TestRecordedHistoriesHoldNoCustomerData scans every committed history
// (testdata and its subfolders): no email address, no token, no field that
// carried them. Histories recorded by older code were redacted with
// `go run ./internal/historyscan/scrub workflows/testdata`; newly recorded
// ones must come out clean by themselves.
func TestRecordedHistoriesHoldNoCustomerData(t *testing.T) {
	var files []string
	err := filepath.WalkDir("testdata", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 60 {
		t.Fatalf("want the recorded histories in testdata, found %d", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			found, err := historyscan.New().ScanFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range found {
				t.Errorf("%s", x)
			}
		})
	}
}
