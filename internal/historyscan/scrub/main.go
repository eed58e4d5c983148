// Command scrub redacts customer data in recorded workflow histories (the
// replay tests' workflows/testdata) and checks that they then scan clean:
//
//	go run ./internal/historyscan/scrub workflows/testdata
//
// Every email address becomes customer-<n>@redacted.invalid, the same
// address the same placeholder in all the files (so that replays still
// match their search attributes), and every token value or token-shaped
// string as many x's. Run the replay tests afterwards.
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"hires/internal/historyscan"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: scrub DIR_OR_FILE...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "scrub:", err)
		os.Exit(1)
	}
}

func run(roots []string) error {
	var files []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	slices.Sort(files) // the same placeholders on every run
	r := historyscan.NewRedactor()
	dirty := 0
	for _, f := range files {
		n, err := r.RedactFile(f)
		if err != nil {
			return err
		}
		findings, err := historyscan.New().ScanFile(f)
		if err != nil {
			return err
		}
		for _, x := range findings {
			fmt.Printf("%s: still %s\n", f, x)
		}
		dirty += len(findings)
		if n > 0 {
			fmt.Printf("%s: %d payloads redacted\n", f, n)
		}
	}
	if dirty > 0 {
		return fmt.Errorf("%d findings left in %d files", dirty, len(files))
	}
	fmt.Printf("%d files scan clean\n", len(files))
	return nil
}
