package measure

import (
	"os"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(d)
	if s.N != 100 || s.P50 != 50*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Fatalf("summary %+v", s)
	}
	if s.Mean != 50500*time.Microsecond {
		t.Fatalf("mean %s", s.Mean)
	}
	if one := Summarize([]time.Duration{time.Second}); one.P50 != time.Second || one.P99 != time.Second {
		t.Fatalf("one sample: %+v", one)
	}
}

func TestPeakRSSOfSelf(t *testing.T) {
	before, _, err := PeakRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	after, cur, err := PeakRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after < before+48<<20 || cur <= 0 {
		t.Fatalf("peak %d -> %d (current %d) after touching 64 MiB", before, after, cur)
	}
	_ = big[len(big)-1]
}

func TestPids(t *testing.T) {
	m, order, err := Pids("edge=12, regional=34,56")
	if err != nil || m["edge"] != 12 || m["regional"] != 34 || m["56"] != 56 || len(order) != 3 {
		t.Fatalf("%v %v %v", m, order, err)
	}
	if _, _, err := Pids("edge=x"); err == nil {
		t.Fatal("bad pid accepted")
	}
}

func TestResidentMemoryOfThisProcess(t *testing.T) {
	m, err := ResidentMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.Anon <= 0 || m.File <= 0 || m.RSS < m.Anon {
		t.Fatalf("memory of this test process: %+v", m)
	}
}
