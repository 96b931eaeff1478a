// Command costmodel re-measures the scan's compile-cost model against the
// wazero this module is built with: for every limit of the scan
// (artifacts/internal/wasmscan) that bounds what compiling, or
// instantiating, an accepted module costs, it builds the worst module of
// a shape the scan still accepts, right at the limit, compiles it with
// wazero's optimizing compiler in a child process of one core, as the
// jailed compile worker does, and measures its wall time and peak memory
// against that worker's budget. Run it at every wazero upgrade:
//
//	go run ./artifacts/internal/wasmscan/costmodel    # or make costmodel
//
// It prints one row a shape and exits 1 if a module the scan accepts
// comes within -margin of a budget: then the limits no longer hold for
// this wazero and must be tuned again (docs/SECURITY.md). -quick scales
// every module down 16 times: a check of the harness and of the model's
// shape in seconds, not of the budgets.
//
// It runs on the developer's machine, on modules it builds itself.
package main

import (
	"flag"
	"fmt"
	"os"
	"regexp"
)

func main() {
	run := flag.String("run", "", "measure only the shapes whose name matches this regular expression")
	quick := flag.Bool("quick", false, "scale every module down 16 times (checks the harness and the shape, not the budgets)")
	margin := flag.Float64("margin", 2, "headroom a budget must keep over what was measured")
	child := flag.String("child", "", "internal: compile the module in this file in this process and print what it cost")
	instance := flag.Bool("instance", false, "internal: with -child, instantiate the module too")
	flag.Parse()
	if *child != "" {
		if err := childMain(*child, *instance); err != nil {
			fmt.Fprintln(os.Stderr, "costmodel:", err)
			os.Exit(2)
		}
		return
	}
	match, err := regexp.Compile(*run)
	if err != nil {
		fmt.Fprintln(os.Stderr, "costmodel: -run:", err)
		os.Exit(2)
	}
	scale := 1
	if *quick {
		scale = 16
	}
	failed, err := measureAll(os.Stdout, match, scale, *margin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "costmodel:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}
