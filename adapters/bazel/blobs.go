package bazel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

// statConcurrency bounds the Stat calls one request runs at once: enough to
// hide an upstream round trip, few enough that one FindMissingBlobs of
// thousands of digests cannot flood the router.
const statConcurrency = 16

// chunkSize is the size of ByteStream messages and copy buffers: large enough
// to amortise per-message cost, far below gRPC's 4 MiB message limit.
const chunkSize = 256 << 10

// bufPool recycles copy buffers so streaming a large blob allocates nothing
// per chunk.
var bufPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// forEach runs fn(i) for i in [0,n) with at most limit calls in flight.
func forEach(n, limit int, fn func(i int)) {
	if n <= 1 || limit <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, limit)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// exists reports whether the CAS holds exactly d. A blob under d's hash with
// another size cannot be d's content, so it counts as missing.
func (s *Server) exists(ctx context.Context, d digest) (bool, error) {
	if d.isEmpty() {
		return true, nil
	}
	res, err := s.cache.Stat(ctx, d.casRef())
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", d, err)
	}
	return res.Found && res.Meta.Size == d.size, nil
}

// missing returns the indices in ds, in order, of the digests the CAS
// does not hold: in one batch when the cache offers it (one pass over the
// local index), else one Stat per digest, concurrently.
func (s *Server) missing(ctx context.Context, ds []digest) ([]int, error) {
	if bs, ok := s.cache.(adapters.BatchStat); ok {
		return missingBatch(ctx, bs, ds)
	}
	found := make([]bool, len(ds))
	errs := make([]error, len(ds))
	forEach(len(ds), statConcurrency, func(i int) {
		found[i], errs[i] = s.exists(ctx, ds[i])
	})
	var out []int
	for i := range ds {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if !found[i] {
			out = append(out, i)
		}
	}
	return out, nil
}

// missingBatch is missing over adapters.BatchStat. A blob under d's hash
// with another size cannot be d's content, so it counts as missing (and
// -1, not found, is no digest's size).
func missingBatch(ctx context.Context, bs adapters.BatchStat, ds []digest) ([]int, error) {
	refs := make([]messages.Ref, 0, len(ds))
	for _, d := range ds {
		if !d.isEmpty() {
			refs = append(refs, d.casRef())
		}
	}
	sizes, err := bs.StatMany(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("stat %d blobs: %w", len(refs), err)
	}
	if len(sizes) != len(refs) {
		return nil, fmt.Errorf("stat %d blobs: %d answers", len(refs), len(sizes))
	}
	n, j := 0, 0
	for _, d := range ds {
		if !d.isEmpty() {
			if sizes[j] != d.size {
				n++
			}
			j++
		}
	}
	out := make([]int, 0, n)
	j = 0
	for i, d := range ds {
		if !d.isEmpty() {
			if sizes[j] != d.size {
				out = append(out, i)
			}
			j++
		}
	}
	return out, nil
}

// openBlob opens d for reading. It returns tier.ErrNotFound on a miss,
// including a stored blob whose size disagrees with d. The caller closes body.
func (s *Server) openBlob(ctx context.Context, d digest) (io.ReadCloser, error) {
	if d.isEmpty() {
		return io.NopCloser(eofReader{}), nil
	}
	res, err := s.cache.Get(ctx, d.casRef())
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", d, err)
	}
	if !res.Found {
		return nil, fmt.Errorf("blob %s: %w", d, tier.ErrNotFound)
	}
	if res.Meta.Size != d.size {
		res.Body.Close()
		return nil, fmt.Errorf("blob %s is stored with size %d: %w", d, res.Meta.Size, tier.ErrNotFound)
	}
	return res.Body, nil
}

// readBlob reads a small blob whole; only batch and proto paths use it, and
// their sizes are bounded by the caller.
func (s *Server) readBlob(ctx context.Context, d digest) ([]byte, error) {
	body, err := s.openBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	buf := make([]byte, d.size)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	return buf, nil
}

// storeBlob streams r into a staging file that verifies d's hash and size,
// then commits it to the CAS. Nothing is stored when verification fails.
func (s *Server) storeBlob(ctx context.Context, d digest, r io.Reader) error {
	if d.isEmpty() {
		// Verify even the empty blob, so that data sent under its digest is
		// still reported as a mismatch.
		var one [1]byte
		if n, _ := io.ReadFull(r, one[:]); n > 0 {
			return fmt.Errorf("%w: data sent for the empty blob", tier.ErrInvalid)
		}
		return nil
	}
	st, err := s.cache.Stage(d.hash, d.size)
	if err != nil {
		return fmt.Errorf("stage %s: %w", d, err)
	}
	buf := getBuf()
	defer putBuf(buf)
	if _, err := io.CopyBuffer(st, r, *buf); err != nil {
		st.Discard()
		return fmt.Errorf("receive %s: %w", d, err)
	}
	if err := st.Seal(); err != nil {
		return fmt.Errorf("verify %s: %w", d, err)
	}
	return s.commit(ctx, d.casRef(), st)
}

// commit hands a sealed staging file to the cache, which owns it afterwards.
func (s *Server) commit(ctx context.Context, ref messages.Ref, st *store.Staged) error {
	if err := s.cache.Put(ctx, ref, metaFor(st.Hash(), st.Size()), st); err != nil {
		return fmt.Errorf("store %s: %w", ref, err)
	}
	return nil
}

// clientData marks errors from reading what a client sent (a corrupt zstd
// frame, a broken stream) as rejected input rather than a server failure.
type clientData struct{ r io.Reader }

func (c clientData) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, tier.ErrInvalid) {
		err = fmt.Errorf("%w: %w", tier.ErrInvalid, err)
	}
	return n, err
}

// eofReader is an empty body without allocation.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// metaFor is the metadata this adapter stores with every artifact.
func metaFor(hash string, size int64) messages.Meta {
	return messages.Meta{Hash: hash, Size: size, BuildSystem: buildSystem}
}
