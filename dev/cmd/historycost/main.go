// Command historycost prints what recorded workflow histories cost on
// Temporal Cloud: history events and billable actions, itemised.
//
//	go run ./dev/cmd/historycost workflows/testdata/*.json
package main

import (
	"fmt"
	"os"

	"hires/dev/historycost"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: historycost HISTORY.json...")
		os.Exit(2)
	}
	for _, f := range os.Args[1:] {
		if err := historycost.WriteFile(os.Stdout, f); err != nil {
			fmt.Fprintln(os.Stderr, "historycost:", err)
			os.Exit(1)
		}
		fmt.Println()
	}
}
