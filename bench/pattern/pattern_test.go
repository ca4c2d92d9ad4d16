package pattern

import (
	"bytes"
	"io"
	"testing"
)

func TestReaderIsSizedDistinctAndRepeatable(t *testing.T) {
	const size = 3*chunk + 123
	a, err := io.ReadAll(New(Key(1, 1), size))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != size {
		t.Fatalf("read %d bytes, want %d", len(a), size)
	}
	again, _ := io.ReadAll(New(Key(1, 1), size))
	if !bytes.Equal(a, again) {
		t.Fatal("the same key produced different content")
	}
	other, _ := io.ReadAll(New(Key(1, 2), size))
	if bytes.Equal(a[:chunk], other[:chunk]) {
		t.Fatal("two keys produced the same content")
	}
	if bytes.Equal(a[:chunk], a[chunk:2*chunk]) {
		t.Fatal("two chunks of one artifact are identical")
	}
	// Small reads see the same bytes as large ones.
	var small bytes.Buffer
	r := New(Key(1, 1), size)
	buf := make([]byte, 7)
	for {
		n, err := r.Read(buf)
		small.Write(buf[:n])
		if err == io.EOF {
			break
		}
	}
	if !bytes.Equal(small.Bytes(), a) {
		t.Fatal("content depends on the read size")
	}
}

// The content of a key is fixed: a bench run compares servers by the bytes
// they store, and a seeded S3 object must hash the same whichever build of
// the generator wrote it. These sums are the content's before Read stopped
// building chunks in a buffer of its own.
func TestContentIsStable(t *testing.T) {
	for size, want := range map[int64]string{
		5:             "73234147a0349d6f94d246325e414da5d85154808fac0210f2e060050be1baff",
		4096:          "34d1bcd2e7a3a4f33447aa47a3cee5ec5a41356d91f83252dd2354135a86c881",
		3*chunk + 123: "b56a6a4a35403531802fed4c44701a333169a694af14c1c52285e6686ece0f49",
	} {
		got, err := Hash(Key(1, 1), size)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("content of %d bytes hashes to %s, want %s", size, got, want)
		}
	}
}

func BenchmarkRead4KiB(b *testing.B) {
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := New(Key(1, i), 4096)
		for {
			if _, err := r.Read(buf); err == io.EOF {
				break
			}
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4KiB": 4096, "1MiB": 1 << 20, "256MiB": 256 << 20, "1GiB": 1 << 30, "17": 17} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
		if in != "17" && FormatSize(got) != in {
			t.Errorf("FormatSize(%d) = %q, want %q", got, FormatSize(got), in)
		}
	}
	if _, err := ParseSize("4KB"); err == nil {
		t.Error("4KB accepted")
	}
}
