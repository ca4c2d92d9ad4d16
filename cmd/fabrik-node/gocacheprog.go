package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/gocacheprog"
)

const gocacheprogUsage = `fabrik-node gocacheprog: the go command's build cache on a fabrik edge.

Usage (the go command starts it; it speaks GOCACHEPROG's protocol on stdin/stdout):
  export GOCACHEPROG="fabrik-node gocacheprog [--url URL] [--dir DIR] [--max-size SIZE]"

Flags:
  --url URL            the edge's HTTP base URL (else FABRIK_HTTP_URL, else ` + defaultEdgeURL + `)
  --dir DIR            local cache directory (else FABRIK_GOCACHE_DIR, else $XDG_CACHE_HOME/fabrik-gocacheprog)
  --max-size SIZE      bound of the local directory, e.g. 5GB (else FABRIK_GOCACHE_MAX_SIZE, else 5GB)
  --token-file FILE    a token for an edge that requires one (else FABRIK_TOKEN)
  --get-timeout D      wait at most D for the edge's answer to a get (default 1s)
  --flush-timeout D    at exit, wait at most D for uploads to the edge (default 10s)
  -v                   print a summary at exit
`

// defaultEdgeURL is the edge's shared HTTP listener at its default address.
const defaultEdgeURL = "http://127.0.0.1:5071"

// gocacheprogCommand runs the GOCACHEPROG helper until the go command closes it.
func gocacheprogCommand(args []string) int {
	opts, err := gocacheprogOptions(args, os.Getenv)
	if err == flag.ErrHelp {
		fmt.Print(gocacheprogUsage)
		return 0
	}
	if err != nil {
		return fail("gocacheprog: %v", err)
	}
	opts.Log = os.Stderr
	if err := gocacheprog.New(opts).Serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "[fabrik] gocacheprog: %v\n", err)
		return 1
	}
	return 0
}

// gocacheprogOptions resolves flags, then environment, then defaults.
func gocacheprogOptions(args []string, getenv func(string) string) (gocacheprog.Options, error) {
	fs := flag.NewFlagSet("gocacheprog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("url", "", "")
	dir := fs.String("dir", "", "")
	maxSize := fs.String("max-size", "", "")
	tokenFile := fs.String("token-file", "", "")
	getTimeout := fs.Duration("get-timeout", time.Second, "")
	flushTimeout := fs.Duration("flush-timeout", 10*time.Second, "")
	verbose := fs.Bool("v", false, "")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return gocacheprog.Options{}, err
		}
		return gocacheprog.Options{}, fmt.Errorf("%v\n%s", err, gocacheprogUsage)
	}
	if fs.NArg() > 0 {
		return gocacheprog.Options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	opts := gocacheprog.Options{
		Edge:         gocacheprog.EdgeOptions{URL: firstSet(*url, getenv("FABRIK_HTTP_URL"), defaultEdgeURL), GetTimeout: *getTimeout},
		FlushTimeout: *flushTimeout,
		Verbose:      *verbose,
	}
	opts.Dir = firstSet(*dir, getenv("FABRIK_GOCACHE_DIR"))
	if opts.Dir == "" {
		base := getenv("XDG_CACHE_HOME")
		if base == "" {
			if home := getenv("HOME"); home != "" {
				base = filepath.Join(home, ".cache")
			} else {
				base = os.TempDir()
			}
		}
		opts.Dir = filepath.Join(base, "fabrik-gocacheprog")
	}
	size, err := config.ParseByteSize(firstSet(*maxSize, getenv("FABRIK_GOCACHE_MAX_SIZE"), "5GB"))
	if err != nil {
		return gocacheprog.Options{}, fmt.Errorf("--max-size: %v", err)
	}
	opts.MaxSize = int64(size)
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return gocacheprog.Options{}, fmt.Errorf("--token-file: %v", err)
		}
		opts.Edge.Token = strings.TrimSpace(string(b))
	} else {
		opts.Edge.Token = getenv("FABRIK_TOKEN")
	}
	return opts, nil
}

// firstSet is the first non-empty value.
func firstSet(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
