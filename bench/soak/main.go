// Command soak drives an edge's Gradle HTTP cache with mixed traffic for a
// long time and watches the edge and regional processes for leaks:
//
//	soak -url http://127.0.0.1:5071 -duration 30m \
//	     -pids edge=1234,regional=5678 \
//	     -metrics edge=http://127.0.0.1:9091,regional=http://127.0.0.1:9191
//
// Traffic (-clients workers): writes of new artifacts (4 KiB to 1 MiB),
// reads of recent artifacts (edge hits), reads of old artifacts (evicted
// from the edge's small max_size, so misses through the regional to S3),
// and reads of keys never written (misses through every tier, 404). Every
// body read is checked byte for byte against the artifact's pattern.
//
// Every -sample (10s) it reads each process's RSS (VmRSS, and its anonymous
// and file-backed parts), open files
// (/proc/<pid>/fd) and goroutines (go_goroutines from its /metrics); every
// -report (1m) it prints those figures and the latency percentiles of the
// interval. It exits non-zero when any request failed (transport error,
// 5xx, a wrong body), when an artifact written more than -settle ago is
// found in no tier (lost; -allow-lost only reports those),
// or when a process grew without bound: the median of the last third of
// the samples above -growth times the median of the first third plus a
// fixed slack (-rss-slack, -goroutine-slack), which absorbs warm-up. RSS
// growth is judged on the anonymous part (heap, stacks: where a leak
// shows): file-backed pages are mapped files, mostly Badger's
// memory-mapped value log, which holds inline artifacts and grows with
// them until its garbage collection, and which the kernel reclaims as page
// cache. Both parts are printed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuist/fabrik-node/bench/measure"
	"github.com/tuist/fabrik-node/bench/pattern"
)

type options struct {
	url                      string
	duration, sample, report time.Duration
	settle                   time.Duration
	clients                  int
	pids, metrics            string
	growth                   float64
	allowLost                bool
	rssSlack                 int64
	goroutineSlack           int
	run                      uint64
	writeRate                int64
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:5071", "edge HTTP base URL (Gradle adapter)")
	flag.DurationVar(&o.duration, "duration", 30*time.Minute, "how long to run")
	flag.DurationVar(&o.sample, "sample", 10*time.Second, "interval of process samples")
	flag.DurationVar(&o.report, "report", time.Minute, "interval of printed reports")
	flag.DurationVar(&o.settle, "settle", 60*time.Second, "an artifact older than this must be readable")
	flag.IntVar(&o.clients, "clients", 4, "concurrent clients")
	flag.StringVar(&o.pids, "pids", "", "name=pid,... of the processes to watch")
	flag.StringVar(&o.metrics, "metrics", "", "name=http://api-address,... (for go_goroutines)")
	flag.Float64Var(&o.growth, "growth", 1.5, "allowed factor between first-third and last-third medians")
	flag.BoolVar(&o.allowLost, "allow-lost", false, "report, but do not fail on, acknowledged artifacts later found in no tier")
	flag.Int64Var(&o.rssSlack, "rss-slack", 64<<20, "bytes of RSS growth always allowed")
	flag.IntVar(&o.goroutineSlack, "goroutine-slack", 50, "goroutines of growth always allowed")
	flag.Uint64Var(&o.run, "run", uint64(time.Now().UnixNano()), "run id (keys are unique per run)")
	flag.Int64Var(&o.writeRate, "write-rate", 2<<20, "bytes per second of new artifacts at most, over all clients (0: unbounded)")
	flag.Parse()
	if err := soak(o); err != nil {
		fmt.Fprintln(os.Stderr, "[soak] FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("[soak] PASS")
}

// pacer bounds the rate of new bytes written. A soak looks for leaks at a
// load the chain can sustain: past what the regional's S3 uploads absorb,
// queued (pinned) artifacts fill the caches and the node refuses writes
// with 413 by design, rather than drop an acknowledged artifact.
type pacer struct {
	mu   sync.Mutex
	next time.Time
	rate float64 // bytes per second; 0 is unbounded
}

// wait blocks until n more bytes may be written; false if ctx ended first.
func (p *pacer) wait(ctx context.Context, n int64) bool {
	if p.rate <= 0 {
		return true
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	p.mu.Unlock()
	select {
	case <-time.After(time.Until(at)):
		return true
	case <-ctx.Done():
		return false
	}
}

// written records when artifact i finished uploading, and its size.
type written struct {
	mu    sync.Mutex
	sizes []int64
	at    []time.Time
}

func (w *written) pick(rng *rand.Rand, recent bool) (int, int64, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.sizes)
	if n == 0 {
		return 0, 0, time.Time{}, false
	}
	var i int
	if recent {
		i = n - 1 - rng.IntN(min(n, 20))
	} else {
		i = rng.IntN(max(n/2, 1)) // the older half: mostly evicted from the edge
	}
	return i, w.sizes[i], w.at[i], true
}

// window collects the latencies and counts of one report interval.
type window struct {
	mu     sync.Mutex
	lat    map[string][]time.Duration
	counts map[string]int
}

func newWindow() *window { return &window{lat: map[string][]time.Duration{}, counts: map[string]int{}} }

func (w *window) observe(op string, d time.Duration) {
	w.mu.Lock()
	w.lat[op] = append(w.lat[op], d)
	w.counts[op]++
	w.mu.Unlock()
}

func (w *window) take() (map[string][]time.Duration, map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l, c := w.lat, w.counts
	w.lat, w.counts = map[string][]time.Duration{}, map[string]int{}
	return l, c
}

type sample struct {
	rss        int64 // anonymous resident memory (RssAnon)
	total      int64 // VmRSS
	file       int64 // RssFile
	fds        int
	goroutines int
}

func soak(o options) error {
	pids, names, err := measure.Pids(o.pids)
	if err != nil {
		return err
	}
	metricURLs := map[string]string{}
	for _, kv := range strings.Split(o.metrics, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			metricURLs[k] = v
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.clients}}
	var (
		w        written
		win      = newWindow()
		failures atomic.Int64
		lost     atomic.Int64
		requests atomic.Int64
		firstErr atomic.Value
		next     atomic.Int64
	)
	fail := func(format string, args ...any) {
		failures.Add(1)
		msg := fmt.Sprintf(format, args...)
		firstErr.CompareAndSwap(nil, msg)
		fmt.Fprintln(os.Stderr, "[soak] error:", msg)
	}
	pace := &pacer{rate: float64(o.writeRate)}
	var wg sync.WaitGroup
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, o.run))
			for ctx.Err() == nil {
				requests.Add(1)
				switch p := rng.IntN(100); {
				case p < 30: // write a new artifact
					size := int64(4<<10) << rng.IntN(9) // 4 KiB .. 1 MiB
					i := int(next.Add(1))
					key := pattern.Key(o.run, i)
					if !pace.wait(ctx, size) {
						return
					}
					start := time.Now()
					code, err := put(ctx, client, o.url, key, size)
					if ctx.Err() != nil {
						return
					}
					win.observe("put", time.Since(start))
					if err != nil || code >= 300 {
						fail("PUT %s (%d bytes): status %d, %v", key, size, code, err)
						continue
					}
					w.set(i, size)
				case p < 95: // read a recent (hit) or an old (evicted) artifact
					recent := p < 85
					i, size, at, ok := w.pick(rng, recent)
					if !ok || size == 0 {
						continue
					}
					key := pattern.Key(o.run, i)
					op := "get-recent"
					if !recent {
						op = "get-old"
					}
					start := time.Now()
					code, err := get(ctx, client, o.url, key, size)
					if ctx.Err() != nil {
						return
					}
					win.observe(op, time.Since(start))
					switch {
					case err != nil:
						fail("GET %s: %v", key, err)
					case code == http.StatusNotFound && time.Since(at) > o.settle:
						// Acknowledged, then found in no tier: data loss,
						// counted apart from request errors.
						lost.Add(1)
						fmt.Fprintf(os.Stderr, "[soak] lost: GET %s: 404 for an artifact written %s ago\n", key, time.Since(at).Round(time.Second))
					case code == http.StatusNotFound:
						win.observe("get-unsettled-404", 0)
					case code != http.StatusOK:
						fail("GET %s: status %d", key, code)
					}
				default: // a key never written: a miss through every tier
					key := pattern.Key(o.run^0xffffffff, rng.IntN(1<<30))
					start := time.Now()
					code, err := get(ctx, client, o.url, key, 0)
					if ctx.Err() != nil {
						return
					}
					win.observe("get-absent", time.Since(start))
					if err != nil || code != http.StatusNotFound {
						fail("GET absent %s: status %d, %v", key, code, err)
					}
				}
			}
		}(uint64(c) + 1)
	}

	samples := map[string][]sample{}
	sampleTick := time.NewTicker(o.sample)
	reportTick := time.NewTicker(o.report)
	defer sampleTick.Stop()
	defer reportTick.Stop()
	begin := time.Now()
	fmt.Printf("[soak] %s of mixed traffic against %s with %d clients; watching %s\n", o.duration, o.url, o.clients, strings.Join(names, ", "))
	takeSample := func() error {
		for _, n := range names {
			s, err := read(pids[n], metricURLs[n])
			if err != nil {
				return err
			}
			samples[n] = append(samples[n], s)
		}
		return nil
	}
	if err := takeSample(); err != nil {
		return err
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-sampleTick.C:
			if err := takeSample(); err != nil {
				cancel()
				wg.Wait()
				return err
			}
		case <-reportTick.C:
			report(time.Since(begin), names, samples, win, failures.Load())
		}
	}
	wg.Wait()
	report(time.Since(begin), names, samples, win, failures.Load())
	fmt.Printf("[soak] %d requests, %d artifacts written, %d failures, %d lost artifacts\n", requests.Load(), next.Load(), failures.Load(), lost.Load())
	var problems []string
	if n := failures.Load(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed (first: %v)", n, firstErr.Load()))
	}
	if n := lost.Load(); n > 0 && !o.allowLost {
		problems = append(problems, fmt.Sprintf("%d reads of acknowledged artifacts missed in every tier", n))
	}
	for _, n := range names {
		problems = append(problems, growth(n, samples[n], o)...)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// set records artifact i (1-based key index) as written now.
func (w *written) set(i int, size int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.sizes) <= i {
		w.sizes = append(w.sizes, 0)
		w.at = append(w.at, time.Time{})
	}
	w.sizes[i], w.at[i] = size, time.Now()
}

func put(ctx context.Context, c *http.Client, base, key string, size int64) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/cache/"+key, pattern.New(key, size))
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode, nil
}

// get reads key and, on a 200, checks the body against its pattern.
func get(ctx context.Context, c *http.Client, base, key string, size int64) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/cache/"+key, nil)
	if err != nil {
		return 0, err
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, res.Body)
		return res.StatusCode, nil
	}
	if err := sameBytes(res.Body, pattern.New(key, size)); err != nil {
		return res.StatusCode, fmt.Errorf("body of %s: %w", key, err)
	}
	return res.StatusCode, nil
}

func sameBytes(got, want io.Reader) error {
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for {
		n, errA := io.ReadFull(got, a)
		m, errB := io.ReadFull(want, b[:n])
		if m != n || !bytes.Equal(a[:n], b[:m]) {
			return fmt.Errorf("differs near byte %d", off)
		}
		off += int64(n)
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			if _, err := want.Read(b[:1]); err != io.EOF {
				return fmt.Errorf("short: %d bytes", off)
			}
			return nil
		}
		if errA != nil {
			return errA
		}
		if errB != nil && errB != io.EOF && errB != io.ErrUnexpectedEOF {
			return errB
		}
		if errB != nil {
			return fmt.Errorf("longer than expected: more than %d bytes", off)
		}
	}
}

// read samples one process: RSS and open files from /proc, goroutines
// from its Prometheus endpoint.
func read(pid int, metricsURL string) (sample, error) {
	mem, err := measure.ResidentMemory(pid)
	if err != nil {
		return sample{}, err
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return sample{}, fmt.Errorf("open files of pid %d: %w", pid, err)
	}
	s := sample{rss: mem.Anon, total: mem.RSS, file: mem.File, fds: len(fds), goroutines: -1}
	if metricsURL != "" {
		g, err := goroutines(metricsURL)
		if err != nil {
			return sample{}, err
		}
		s.goroutines = g
	}
	return s, nil
}

func goroutines(base string) (int, error) {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("read goroutines: %w", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("%s/metrics has no go_goroutines", base)
}

func report(elapsed time.Duration, names []string, samples map[string][]sample, win *window, failures int64) {
	lat, counts := win.take()
	fmt.Printf("[soak] t=%s failures=%d\n", elapsed.Round(time.Second), failures)
	for _, n := range names {
		s := samples[n][len(samples[n])-1]
		fmt.Printf("  %-9s rss=%s (anon %s, file %s) goroutines=%d open_files=%d\n", n, measure.MiB(s.total), measure.MiB(s.rss), measure.MiB(s.file), s.goroutines, s.fds)
	}
	ops := make([]string, 0, len(lat))
	for op := range lat {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		if op == "get-unsettled-404" {
			fmt.Printf("  %-17s n=%d (artifact not yet readable: still uploading)\n", op, counts[op])
			continue
		}
		s := measure.Summarize(lat[op])
		fmt.Printf("  %-17s n=%-6d p50=%s p99=%s max=%s\n", op, s.N, measure.Ms(s.P50), measure.Ms(s.P99), measure.Ms(s.Max))
	}
}

// growth compares the median of the last third of the samples with the
// median of the first third.
func growth(name string, s []sample, o options) []string {
	if len(s) < 3 {
		return nil
	}
	third := len(s) / 3
	first, last := s[:third], s[len(s)-third:]
	med := func(xs []sample, f func(sample) int64) int64 {
		v := make([]int64, len(xs))
		for i, x := range xs {
			v[i] = f(x)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	var out []string
	rss := func(x sample) int64 { return x.rss }
	g := func(x sample) int64 { return int64(x.goroutines) }
	a, b := med(first, rss), med(last, rss)
	fmt.Printf("[soak] %s anonymous RSS median first third %s, last third %s (limit %s)\n", name, measure.MiB(a), measure.MiB(b), measure.MiB(int64(float64(a)*o.growth)+o.rssSlack))
	if float64(b) > float64(a)*o.growth+float64(o.rssSlack) {
		out = append(out, fmt.Sprintf("%s anonymous RSS grew from %s to %s", name, measure.MiB(a), measure.MiB(b)))
	}
	if s[0].goroutines >= 0 {
		a, b := med(first, g), med(last, g)
		fmt.Printf("[soak] %s goroutines median first third %d, last third %d (limit %d)\n", name, a, b, int64(float64(a)*o.growth)+int64(o.goroutineSlack))
		if float64(b) > float64(a)*o.growth+float64(o.goroutineSlack) {
			out = append(out, fmt.Sprintf("%s goroutines grew from %d to %d", name, a, b))
		}
	}
	return out
}
