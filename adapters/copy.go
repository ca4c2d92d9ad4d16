package adapters

import (
	"io"
	"sync"
)

// copyBufs recycles the buffers request and response bodies stream through,
// so a busy node does not allocate 32 KiB per transfer. (A response from a
// local file never uses one: the ResponseWriter's ReadFrom sends it with
// sendfile.)
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// Copy is io.Copy with a pooled buffer.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(dst, src, *buf)
}

// smallBody is the size up to which SendBody reads the body into a pooled
// buffer and writes it in one Write: for a small artifact that costs fewer
// system calls than net/http's sendfile path (read a sniff prefix, write
// headers, sendfile the rest). net/http's connection buffer is 4 KiB, so
// the headers and a body of up to about 3.9 KiB leave in one write(2); a
// larger one in two or more (a 4 KiB body: two, as from any net/http
// server, the in-memory limit included).
const smallBody = 64 << 10

// SendBody writes a response body of the given size from body.
func SendBody(w io.Writer, body io.Reader, size int64) (int64, error) {
	if size < 0 || size > smallBody {
		return Copy(w, body)
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.ReadFull(body, (*buf)[:size])
	if err != nil {
		return 0, err
	}
	// Read on to EOF: a body that streams from an upstream is written back
	// to the local tier only when its reader sees EOF, and ReadFull stops
	// one read short of it (every upstream hit up to 64 KiB was served but
	// never kept). A local file answers at once.
	var probe [1]byte
	io.ReadFull(body, probe[:])
	m, err := w.Write((*buf)[:n])
	return int64(m), err
}
