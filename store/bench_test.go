package store

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/messages"
)

// Run: go test ./store -run '^$' -bench . -benchtime 2000x
// (BenchmarkRebuild100k spends ~10 s building its fixture once.)

func BenchmarkCommit4KiB(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		b.Run(fmt.Sprintf("fsync=%v", fsync), func(b *testing.B) {
			s := openStore(b, Options{Fsync: fsync})
			body := make([]byte, 4096)
			b.SetBytes(4096)
			b.ResetTimer()
			for i := range b.N {
				copy(body, strconv.Itoa(i)) // distinct content: no dedupe shortcut
				ref := messages.Ref{Namespace: "gradle", Key: strconv.Itoa(i)}
				if _, err := s.PutReader(ref, messages.Meta{}, bytes.NewReader(body)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			reportRSS(b)
		})
	}
}

// BenchmarkOpen4KiB reads 1,000 blobs of 4 KiB through Open, from their
// files (hot tier off) and from the hot tier: both in one run.
func BenchmarkOpen4KiB(b *testing.B) {
	b.Run("files", func(b *testing.B) { benchOpen4KiB(b, Options{}) })
	b.Run("hot", func(b *testing.B) { benchOpen4KiB(b, Options{HotSize: 64 << 20}) })
}

func benchOpen4KiB(b *testing.B, opts Options) {
	s := openStore(b, opts)
	const n = 1000
	for i := range n {
		body := content(i, 4096)
		put(b, s, key(strconv.Itoa(i)), body)
	}
	buf := make([]byte, 8192)
	b.SetBytes(4096)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, r, err := s.Open(key(strconv.Itoa(i % n)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(r, buf[:4096]); err != nil {
				b.Fatal(err)
			}
			r.Close()
			i++
		}
	})
}

// BenchmarkRebuild100k measures Open on a store of 100k blobs (each behind a
// key): Badger's start-up and the b/ scan. verify-s is the background check
// of the blob files that follows (one stat per file).
func BenchmarkRebuild100k(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		body := []byte(strconv.Itoa(i))
		if _, err := s.PutReader(key(strconv.Itoa(i)), messages.Meta{}, bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	runtime.GC()
	b.ResetTimer()
	for range b.N {
		s, err := Open(Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		start := time.Now()
		<-s.Verified()
		b.ReportMetric(time.Since(start).Seconds(), "verify-s")
		if _, objs := s.Usage(); objs != n {
			b.Fatalf("rebuilt %d entries, want %d", objs, n)
		}
		runtime.GC()
		reportRSS(b)
		s.Close()
		b.StartTimer()
	}
}

// reportRSS adds the process's resident set and Go heap to the benchmark
// output: the figures that show Badger's bounded options at work.
func reportRSS(b *testing.B) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			b.ReportMetric(kb/1024, "rss-MiB")
		}
	}
}
