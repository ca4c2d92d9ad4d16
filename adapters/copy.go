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
