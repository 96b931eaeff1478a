// Command benchreport runs udfhost's benchmark suite against real processes
// and writes docs/BENCHMARKS.md: every figure next to its ceiling measured
// in the same run, and the command that reproduces it. `make bench` runs it.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"
)

type config struct {
	bin, examples, out string
	duration           time.Duration
	quick              bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin/udfhost", "udfhost binary")
	flag.StringVar(&cfg.examples, "examples", "bin/examples", "built example modules")
	flag.StringVar(&cfg.out, "out", "docs/BENCHMARKS.md", "report to write")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "measuring time per load figure")
	flag.BoolVar(&cfg.quick, "quick", false, "tiny sizes, to check the suite runs (figures meaningless)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchreport: ")
	if cfg.quick {
		cfg.duration = 300 * time.Millisecond
	}
	r, err := run(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(cfg.out, []byte(r.markdown()), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", cfg.out)
}
