package bazel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/store"
	"github.com/tuist/fabrik-node/tier"
)

// byteStreamServer serves google.bytestream.ByteStream for CAS blobs too
// large for a batch. Blobs stream through in chunkSize pieces in both
// directions; nothing holds a whole blob in memory.
type byteStreamServer struct {
	bytestream.UnimplementedByteStreamServer
	srv *Server
}

// Read streams a blob from read_offset, uncompressed or as one zstd stream.
// With compression the offset counts uncompressed bytes and read_limit must
// be 0, as the REAPI requires.
func (b *byteStreamServer) Read(req *bytestream.ReadRequest, stream bytestream.ByteStream_ReadServer) error {
	defer b.srv.observe("bytestream_read", time.Now())
	r, err := parseReadResource(req.GetResourceName())
	if err != nil {
		return err
	}
	off, limit := req.GetReadOffset(), req.GetReadLimit()
	switch {
	case off < 0:
		return invalid("Read %s: negative read_offset %d", r, off)
	case limit < 0:
		return invalid("Read %s: negative read_limit %d", r, limit)
	case r.compressed && limit != 0:
		return invalid("Read %s: read_limit must be 0 for compressed blobs", r)
	case off > r.d.size:
		return status.Errorf(codes.OutOfRange, "Read %s: read_offset %d is past the end of the %d-byte blob", r, off, r.d.size)
	}
	body, err := b.srv.openBlob(stream.Context(), r.d)
	if err != nil {
		return b.srv.statusFor("bytestream_read", err)
	}
	defer body.Close()
	if err := skip(body, off); err != nil {
		return b.srv.statusFor("bytestream_read", fmt.Errorf("seek %s to %d: %w", r, off, err))
	}
	n := r.d.size - off
	if limit > 0 && limit < n {
		n = limit
	}
	src := io.LimitReader(body, n)
	buf := getBuf()
	defer putBuf(buf)
	out := &chunkSender{stream: stream, buf: (*buf)[:0]}
	if r.compressed {
		err = sendCompressed(out, src)
	} else {
		err = sendPlain(out, src, *buf)
	}
	b.srv.downloaded(out.sent)
	if err == nil && out.read < n {
		err = fmt.Errorf("blob %s ended after %d of %d bytes", r, off+out.read, r.d.size)
	}
	return b.srv.statusFor("bytestream_read", err)
}

// skip moves body to off, seeking when the body is a file.
func skip(body io.Reader, off int64) error {
	if off == 0 {
		return nil
	}
	if s, ok := body.(io.Seeker); ok {
		_, err := s.Seek(off, io.SeekStart)
		return err
	}
	_, err := io.CopyN(io.Discard, body, off)
	return err
}

// sendPlain sends src in chunks read straight into buf.
func sendPlain(out *chunkSender, src io.Reader, buf []byte) error {
	for {
		k, err := io.ReadFull(src, buf)
		if k > 0 {
			out.read += int64(k)
			if err := out.send(buf[:k]); err != nil {
				return err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read blob: %w", err)
		}
	}
}

// sendCompressed zstd-encodes src into out, which sends full chunks as the
// encoder produces them.
func sendCompressed(out *chunkSender, src io.Reader) error {
	enc := getEncoder(out)
	defer putEncoder(enc)
	counted := &countingReader{r: src}
	if _, err := enc.ReadFrom(counted); err != nil {
		return fmt.Errorf("compress blob: %w", err)
	}
	out.read = counted.n
	if err := enc.Close(); err != nil {
		return fmt.Errorf("compress blob: %w", err)
	}
	return out.flush()
}

// chunkSender is an io.Writer that batches writes into ReadResponses of at
// most chunkSize bytes. gRPC serialises a message before Send returns, so buf
// is reused for every chunk.
type chunkSender struct {
	stream bytestream.ByteStream_ReadServer
	buf    []byte
	// read counts uncompressed blob bytes consumed; sent counts bytes sent.
	read, sent int64
}

func (c *chunkSender) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := copy(c.buf[len(c.buf):cap(c.buf)], p)
		c.buf, p = c.buf[:len(c.buf)+k], p[k:]
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

func (c *chunkSender) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	err := c.send(c.buf)
	c.buf = c.buf[:0]
	return err
}

func (c *chunkSender) send(p []byte) error {
	if err := c.stream.Send(&bytestream.ReadResponse{Data: p}); err != nil {
		return err
	}
	c.sent += int64(len(p))
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Write receives a blob into a staging file that verifies hash and size, and
// commits it to the CAS once finish_write arrives. A stream that ends without
// finish_write, or with data that disagrees with the digest, stores nothing.
// An uncompressed upload whose stream breaks is parked for QueryWriteStatus
// and a resuming Write; a compressed one starts over, since a zstd decoder's
// state cannot be resumed from a byte offset.
func (b *byteStreamServer) Write(stream bytestream.ByteStream_WriteServer) error {
	defer b.srv.observe("bytestream_write", time.Now())
	first, err := stream.Recv()
	if err == io.EOF {
		return invalid("Write: the stream carried no request")
	}
	if err != nil {
		return err
	}
	name := first.GetResourceName()
	r, err := parseWriteResource(name)
	if err != nil {
		return err
	}
	if first.GetWriteOffset() < 0 {
		return invalid("Write %s: negative write_offset %d", r, first.GetWriteOffset())
	}
	if err := b.srv.checkSize(r.d); err != nil {
		return err
	}
	ctx := stream.Context()
	// A blob that is already stored needs no upload: answer at once, as the
	// REAPI allows, with the full size (or -1 for a compressed upload).
	if ok, err := b.srv.exists(ctx, r.d); err != nil {
		return b.srv.statusFor("bytestream_write", err)
	} else if ok {
		committed := r.d.size
		if r.compressed {
			committed = -1
		}
		return stream.SendAndClose(&bytestream.WriteResponse{CommittedSize: committed})
	}
	in := &writeReader{stream: stream, name: name, cur: first.GetData(),
		next: first.GetWriteOffset() + int64(len(first.GetData())), finished: first.GetFinishWrite(),
		received: int64(len(first.GetData()))}
	var committed int64
	if r.compressed {
		committed, err = b.writeCompressed(ctx, r, first.GetWriteOffset(), in)
	} else {
		committed, err = b.writePlain(ctx, r, name, first.GetWriteOffset(), in)
	}
	b.srv.uploaded(in.received)
	if err != nil {
		var se streamError
		if errors.As(err, &se) {
			return se.err
		}
		return b.srv.statusFor("bytestream_write", err)
	}
	return stream.SendAndClose(&bytestream.WriteResponse{CommittedSize: committed})
}

func (b *byteStreamServer) writePlain(ctx context.Context, r resource, name string, offset int64, in *writeReader) (int64, error) {
	up, ok, err := b.srv.uploads.acquire(name, func() (*store.Staged, error) { return b.srv.cache.Stage(r.d.hash, r.d.size) })
	if err != nil {
		return 0, fmt.Errorf("stage %s: %w", r, err)
	}
	if !ok {
		return 0, status.Errorf(codes.Aborted, "Write %s: another stream is writing %q", r, truncate(name))
	}
	if offset == 0 && up.committed.Load() > 0 {
		// The client starts over instead of resuming: so do we.
		up.staged.Discard()
		if up.staged, err = b.srv.cache.Stage(r.d.hash, r.d.size); err != nil {
			b.srv.uploads.remove(name, up)
			return 0, fmt.Errorf("stage %s: %w", r, err)
		}
		up.committed.Store(0)
	}
	if offset != up.committed.Load() {
		b.srv.uploads.park(name, up)
		return 0, invalid("Write %s: write_offset %d, but %d bytes are committed (ask QueryWriteStatus)", r, offset, up.committed.Load())
	}
	_, err = copyCommitted(up, in)
	var se streamError
	if errors.As(err, &se) {
		b.srv.uploads.park(name, up)
		return 0, err
	}
	b.srv.uploads.remove(name, up)
	if err != nil {
		up.staged.Discard()
		return 0, err
	}
	if err := up.staged.Seal(); err != nil {
		return 0, fmt.Errorf("verify %s: %w", r, err)
	}
	if err := b.srv.commit(ctx, r.d.casRef(), up.staged); err != nil {
		return 0, err
	}
	return r.d.size, nil
}

// copyCommitted copies in into the upload's staging file, publishing the
// committed size after every chunk for QueryWriteStatus.
func copyCommitted(up *upload, in *writeReader) (int64, error) {
	var total int64
	for {
		p, err := in.chunk()
		if len(p) > 0 {
			if _, werr := up.staged.Write(p); werr != nil {
				return total, werr
			}
			total += int64(len(p))
			up.committed.Store(up.staged.Written())
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (b *byteStreamServer) writeCompressed(ctx context.Context, r resource, offset int64, in *writeReader) (int64, error) {
	if offset != 0 {
		return 0, invalid("Write %s: a compressed upload cannot resume at write_offset %d; start again at 0", r, offset)
	}
	dec, err := newDecompressor(in)
	if err != nil {
		return 0, err
	}
	defer dec.release()
	if err := b.srv.storeBlob(ctx, r.d, clientData{dec}); err != nil {
		return 0, err
	}
	// The decoder stops at the end of its frames; anything after them is
	// not part of the blob.
	if extra, err := io.Copy(io.Discard, in); err != nil {
		return 0, err
	} else if extra > 0 {
		return 0, invalid("Write %s: %d bytes after the end of the zstd stream", r, extra)
	}
	// The REAPI's committed size for a compressed write: the first offset
	// plus the compressed bytes received.
	return in.next, nil
}

// writeReader turns the WriteRequests of a stream into a byte stream,
// checking that every write_offset continues where the last one ended. It
// returns io.EOF after a request with finish_write.
type writeReader struct {
	stream   bytestream.ByteStream_WriteServer
	name     string
	cur      []byte
	next     int64
	finished bool
	// received counts data bytes taken off the wire, for bandwidth metrics.
	received int64
}

// streamError is a failure of the transport (a cancelled or broken stream),
// as opposed to bad data: the upload may be resumed.
type streamError struct{ err error }

func (e streamError) Error() string { return e.err.Error() }
func (e streamError) Unwrap() error { return e.err }

// chunk returns the next piece of data, without copying.
func (w *writeReader) chunk() ([]byte, error) {
	for len(w.cur) == 0 {
		if w.finished {
			return nil, io.EOF
		}
		req, err := w.stream.Recv()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: the client closed the stream at offset %d without finish_write", tier.ErrInvalid, w.next)
		}
		if err != nil {
			return nil, streamError{err}
		}
		if n := req.GetResourceName(); n != "" && n != w.name {
			return nil, fmt.Errorf("%w: resource name changed mid-stream to %q", tier.ErrInvalid, truncate(n))
		}
		if req.GetWriteOffset() != w.next {
			return nil, fmt.Errorf("%w: write_offset %d, expected %d", tier.ErrInvalid, req.GetWriteOffset(), w.next)
		}
		w.cur, w.finished = req.GetData(), req.GetFinishWrite()
		w.next += int64(len(w.cur))
		w.received += int64(len(w.cur))
	}
	p := w.cur
	w.cur = nil
	return p, nil
}

func (w *writeReader) Read(p []byte) (int, error) {
	if len(w.cur) == 0 {
		c, err := w.chunk()
		if err != nil {
			return 0, err
		}
		w.cur = c
	}
	n := copy(p, w.cur)
	w.cur = w.cur[n:]
	return n, nil
}

// QueryWriteStatus reports how much of an upload was received: the full size
// once the blob is stored, the committed bytes of a parked upload, NOT_FOUND
// for an upload this server does not know.
func (b *byteStreamServer) QueryWriteStatus(ctx context.Context, req *bytestream.QueryWriteStatusRequest) (*bytestream.QueryWriteStatusResponse, error) {
	defer b.srv.observe("bytestream_query_write_status", time.Now())
	r, err := parseWriteResource(req.GetResourceName())
	if err != nil {
		return nil, err
	}
	if ok, err := b.srv.exists(ctx, r.d); err != nil {
		return nil, b.srv.statusFor("bytestream_query_write_status", err)
	} else if ok {
		return &bytestream.QueryWriteStatusResponse{CommittedSize: r.d.size, Complete: true}, nil
	}
	if n, ok := b.srv.uploads.committed(req.GetResourceName()); ok {
		return &bytestream.QueryWriteStatusResponse{CommittedSize: n}, nil
	}
	return nil, status.Errorf(codes.NotFound, "QueryWriteStatus %s: no upload in progress under %q", r, truncate(req.GetResourceName()))
}
