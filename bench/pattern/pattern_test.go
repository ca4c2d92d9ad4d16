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
