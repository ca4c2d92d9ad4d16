// Command gomodgen writes the synthetic Go module of internal/gomodule, for
// the GOCACHEPROG scenario of scripts/bench.sh:
//
//	gomodgen -dir DIR -packages 60 [-tests] [-main] [-std=false]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tuist/fabrik-node/internal/gomodule"
)

func main() {
	dir := flag.String("dir", "", "directory to write the module into (required)")
	o := gomodule.Options{}
	flag.IntVar(&o.Packages, "packages", 60, "library packages")
	flag.BoolVar(&o.Tests, "tests", false, "give every package a test")
	flag.BoolVar(&o.Main, "main", true, "add a main package, cmd/app")
	flag.BoolVar(&o.Std, "std", true, "import the standard library")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "gomodgen: -dir is required")
		os.Exit(2)
	}
	pkgs, err := gomodule.Write(*dir, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gomodgen:", err)
		os.Exit(1)
	}
	fmt.Println(len(pkgs))
}
