package bazel

import (
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Decoders and encoders run with concurrency 1: they then decode and encode
// synchronously in the calling goroutine, start no goroutines of their own,
// and can be pooled without ever being closed. Their window buffers are the
// expensive part, so pooling keeps large transfers from allocating per call.
var (
	decoderPool = sync.Pool{New: func() any {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			panic(fmt.Sprintf("zstd decoder with fixed options: %v", err))
		}
		return d
	}}
	encoderPool = sync.Pool{New: func() any {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			panic(fmt.Sprintf("zstd encoder with fixed options: %v", err))
		}
		return e
	}}
)

// maxZstdWindow caps the window a client's frame may make us allocate.
// Bazel's zstd levels use windows of a few MiB; 32 MiB leaves room for high
// levels without letting one upload claim the default 128 MiB.
const maxZstdWindow = 32 << 20

// decompressor wraps a pooled zstd decoder reading r.
type decompressor struct{ *zstd.Decoder }

func newDecompressor(r io.Reader) (decompressor, error) {
	d := decoderPool.Get().(*zstd.Decoder)
	if err := d.Reset(r); err != nil {
		decoderPool.Put(d)
		return decompressor{}, fmt.Errorf("start zstd decoder: %w", err)
	}
	return decompressor{d}, nil
}

// release returns the decoder to the pool; the decompressor is unusable after.
func (d decompressor) release() {
	_ = d.Decoder.Reset(nil)
	decoderPool.Put(d.Decoder)
}

func getEncoder(w io.Writer) *zstd.Encoder {
	e := encoderPool.Get().(*zstd.Encoder)
	e.Reset(w)
	return e
}

func putEncoder(e *zstd.Encoder) {
	e.Reset(nil)
	encoderPool.Put(e)
}
