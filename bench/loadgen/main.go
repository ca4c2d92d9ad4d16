// Command loadgen drives a cache on loopback with N concurrent clients and
// prints ops/s, MB/s, p50/p99 latency, server CPU per request and the peak
// RSS of the processes it is given. HTTP PUT/GET of <url><path><key>
// covers the Gradle cache (/cache/), bazel-remote's /ac/ (-key64) and the
// Turborepo API (/v8/artifacts/ with -query teamId=... and -bearer);
// -op findmissing sends REAPI FindMissingBlobs calls over gRPC.
//
//	loadgen -url http://127.0.0.1:5071 -op put -size 1MiB -clients 16 -n 256 -run 7 -pids edge=1234
//	loadgen -url http://127.0.0.1:5071 -op get -size 1MiB -clients 16 -n 1024 -keys 256 -run 7 -pids edge=1234
//	loadgen -url http://127.0.0.1:5071 -path /v8/artifacts/ -query teamId=bench -bearer t -op put -size 4KiB
//	loadgen -op findmissing -grpc 127.0.0.1:9092 -digests 1000 -clients 8 -n 400 -run 7
//	loadgen -op rss -pids edge=1234,regional=5678
//	loadgen -op ports -n 3
//
// A PUT run writes keys 0..n-1 of the run; a GET run reads keys 0..keys-1
// of the same run round-robin, so GET after PUT with the same -run hits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuist/fabrik-node/bench/measure"
	"github.com/tuist/fabrik-node/bench/pattern"
)

type options struct {
	url      string
	op       string
	size     int64
	clients  int
	n        int
	keys     int
	run      uint64
	duration time.Duration
	pids     string
	name     string
	expect   int
	path     string
	key64    bool
	query    string
	bearer   string
	grpc     string
	digests  int
}

func main() {
	var o options
	var size string
	flag.StringVar(&o.url, "url", "http://127.0.0.1:5071", "node's Gradle base URL")
	flag.StringVar(&o.op, "op", "put", "put, get, findmissing, rss (print peak RSS of -pids) or ports (print -n free loopback ports)")
	flag.StringVar(&size, "size", "4KiB", "artifact size")
	flag.IntVar(&o.clients, "clients", 16, "concurrent clients")
	flag.IntVar(&o.n, "n", 100, "requests in total")
	flag.IntVar(&o.keys, "keys", 0, "get: distinct keys to cycle through (default -n)")
	flag.Uint64Var(&o.run, "run", 1, "run id: keys are derived from it")
	flag.DurationVar(&o.duration, "duration", 0, "stop after this long even if -n is not reached (0 = no limit)")
	flag.StringVar(&o.pids, "pids", "", "name=pid,... whose peak RSS (VmHWM) is reset before and read after the run")
	flag.StringVar(&o.name, "name", "", "scenario name in the output (default op/size/clients)")
	flag.IntVar(&o.expect, "expect", 0, "expected status (default 200, and any 2xx for a PUT: Turborepo answers 202); others count as errors")
	flag.StringVar(&o.path, "path", "/cache/", "path prefix of the keys (bazel-remote: /ac/)")
	flag.BoolVar(&o.key64, "key64", false, "send 64-hex-digit keys (the key twice), as bazel-remote's /ac/ wants")
	flag.StringVar(&o.query, "query", "", "query string added to every URL (Turborepo: teamId=...)")
	flag.StringVar(&o.bearer, "bearer", "", "send Authorization: Bearer <token> (Turborepo)")
	flag.StringVar(&o.grpc, "grpc", "", "findmissing: REAPI gRPC address host:port")
	flag.IntVar(&o.digests, "digests", 100, "findmissing: digests per call, half of them uploaded first")
	flag.Parse()
	var err error
	if o.size, err = pattern.ParseSize(size); err != nil {
		fail(err)
	}
	if o.keys <= 0 {
		o.keys = o.n
	}
	if o.expect == 0 {
		o.expect = http.StatusOK
	}
	switch o.op {
	case "put", "get":
		err = load(o, httpRequests(o))
	case "findmissing":
		var do requestFunc
		var closeConn func()
		if do, closeConn, err = findMissingRequests(o); err == nil {
			err = load(o, do)
			closeConn()
		}
	case "rss":
		err = printRSS(o.pids, "")
	case "ports":
		err = ports(o.n)
	default:
		err = fmt.Errorf("unknown -op %q", o.op)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

// result of one request.
type result struct {
	took  time.Duration
	bytes int64
	err   error
}

// requestFunc sends request i of a run (buf is the client's own buffer).
type requestFunc func(ctx context.Context, i int, buf []byte) result

// load runs o.n requests from o.clients goroutines and prints the summary.
func load(o options, do requestFunc) error {
	pids, _, err := measure.Pids(o.pids)
	if err != nil {
		return err
	}
	for name, pid := range pids {
		if err := measure.ResetPeak(pid); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %s: %v (peak covers the whole process life)\n", name, err)
		}
	}
	// CPU the servers spend per request: robust to the machine's load, where
	// wall-clock rates of consecutive runs drift.
	cpuTotal := func() time.Duration {
		var t time.Duration
		for _, pid := range pids {
			if c, err := measure.CPUTime(pid); err == nil {
				t += c
			}
		}
		return t
	}
	cpuBefore := cpuTotal()
	ctx := context.Background()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	var next atomic.Int64
	results := make([]result, o.n)
	var done atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= o.n {
					return
				}
				results[i] = do(ctx, i, buf)
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTotal() - cpuBefore

	var lat []time.Duration
	var bytes int64
	var errs int
	var firstErr error
	for _, r := range results[:done.Load()] {
		if r.err != nil {
			errs++
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		lat = append(lat, r.took)
		bytes += r.bytes
	}
	s := measure.Summarize(lat)
	name := o.name
	if name == "" && o.op == "findmissing" {
		name = fmt.Sprintf("%s d=%d c=%d", o.op, o.digests, o.clients)
	} else if name == "" {
		name = fmt.Sprintf("%s %s c=%d", o.op, pattern.FormatSize(o.size), o.clients)
	}
	cpuPerOp := ""
	if len(pids) > 0 && s.N > 0 {
		cpuPerOp = fmt.Sprintf(" cpu-us/op=%.1f", float64(cpu.Microseconds())/float64(s.N))
	}
	fmt.Printf("%-28s ops=%d errors=%d time=%.2fs ops/s=%.1f MB/s=%.1f p50=%s p99=%s max=%s%s\n",
		name, s.N, errs, elapsed.Seconds(), float64(s.N)/elapsed.Seconds(),
		float64(bytes)/1e6/elapsed.Seconds(), measure.Ms(s.P50), measure.Ms(s.P99), measure.Ms(s.Max), cpuPerOp)
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %s: first error: %v\n", name, firstErr)
	}
	if err := printRSS(o.pids, name); err != nil {
		return err
	}
	if errs > 0 {
		return fmt.Errorf("%s: %d of %d requests failed", name, errs, s.N+errs)
	}
	return nil
}

// wire is key as sent in the URL.
func (o options) wire(key string) string {
	if o.key64 {
		return key + key
	}
	return key
}

// target is the URL of key.
func (o options) target(key string) string {
	u := o.url + o.path + o.wire(key)
	if o.query != "" {
		u += "?" + o.query
	}
	return u
}

// httpRequests sends HTTP PUTs or GETs on one shared client.
func httpRequests(o options) requestFunc {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: o.clients,
		DisableCompression:  true,
		// Large bodies: bigger socket buffers cut syscalls on both sides.
		WriteBufferSize: 256 << 10,
		ReadBufferSize:  256 << 10,
	}}
	return func(ctx context.Context, i int, buf []byte) result { return one(ctx, client, o, i, buf) }
}

// one sends request i and reads the whole answer.
func one(ctx context.Context, c *http.Client, o options, i int, buf []byte) result {
	var req *http.Request
	var err error
	if o.op == "put" {
		key := pattern.Key(o.run, i)
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, o.target(key), pattern.New(key, o.size))
		if err == nil {
			req.ContentLength = o.size
			// What turbo and Gradle send; Fastify-based servers
			// (turborepo-remote-cache) refuse a body without it.
			req.Header.Set("Content-Type", "application/octet-stream")
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, o.target(pattern.Key(o.run, i%o.keys)), nil)
	}
	if err != nil {
		return result{err: err}
	}
	if o.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+o.bearer)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
	resp.Body.Close()
	took := time.Since(start)
	switch {
	case err != nil:
		return result{err: fmt.Errorf("%s %s: body after %d bytes: %w", req.Method, req.URL.Path, n, err)}
	case resp.StatusCode != o.expect && !(o.op == "put" && o.expect == http.StatusOK && resp.StatusCode/100 == 2):
		return result{err: fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)}
	case o.op == "get" && resp.StatusCode == http.StatusOK && n != o.size:
		return result{err: fmt.Errorf("GET %s: %d bytes, want %d", req.URL.Path, n, o.size)}
	}
	if o.op == "put" {
		n = o.size
	}
	return result{took: took, bytes: n}
}

// printRSS prints the peak and current RSS of each named process.
func printRSS(spec, scenario string) error {
	pids, order, err := measure.Pids(spec)
	if err != nil {
		return err
	}
	var parts []string
	for _, name := range order {
		peak, cur, err := measure.PeakRSS(pids[name])
		if err != nil {
			return err
		}
		parts = append(parts, fmt.Sprintf("%s peak=%s rss=%s", name, measure.MiB(peak), measure.MiB(cur)))
	}
	if len(parts) > 0 {
		prefix := "rss"
		if scenario != "" {
			prefix = "  rss"
		}
		fmt.Printf("%s %s\n", prefix, strings.Join(parts, "; "))
	}
	return nil
}

// ports prints n free loopback ports, for scripts that start nodes on
// fixed addresses. All listeners are held until every port is chosen so
// the n are distinct.
func ports(n int) error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return errors.Join(errors.New("find a free port"), err)
		}
		ls = append(ls, l)
	}
	for _, l := range ls {
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
