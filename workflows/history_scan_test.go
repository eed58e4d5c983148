package workflows_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"hires/internal/historyscan"
)

// TestRecordedHistoriesHoldNoCustomerData scans every committed history:
// no email address, no token, no field that carried them.
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
	if len(files) < 15 {
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
