package fabrik

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
	"github.com/tuist/fabrik-node/tier"
)

// errStalled is the cancel cause when a stream waited longer than Timeout.
var errStalled = errors.New("stream stalled")

// chunkPool recycles Put's read buffers (the message is marshalled inside
// Send, so the buffer is free again when Send returns).
var chunkPool = sync.Pool{New: func() any { b := make([]byte, fabrikv1.ChunkSize); return &b }}

// watchdog cancels a stream's context when one wait on the regional lasts
// longer than the timeout. It is armed only while this side waits, so a
// caller that is slow to consume a Get never trips it.
type watchdog struct {
	timer   *time.Timer
	timeout time.Duration
}

// newStream derives the stream's context; the watchdog starts armed, covering
// the wait for the connection and the first response.
func (t *Tier) newStream(ctx context.Context) (context.Context, context.CancelCauseFunc, *watchdog) {
	sctx, cancel := context.WithCancelCause(ctx)
	w := &watchdog{timeout: t.timeout}
	w.timer = time.AfterFunc(t.timeout, func() { cancel(errStalled) })
	return sctx, cancel, w
}

func (w *watchdog) arm()    { w.timer.Reset(w.timeout) }
func (w *watchdog) disarm() { w.timer.Stop() }

// streamErr is wrap for stream failures: a stall is reported as
// ErrUnavailable with the timeout, not as the cancellation it caused.
func (t *Tier) streamErr(ctx context.Context, op string, ref messages.Ref, err error) error {
	if errors.Is(context.Cause(ctx), errStalled) {
		return fmt.Errorf("fabrik tier %s: %s %s: %w: no progress for %s: %w", t.name, op, ref, ErrUnavailable, t.timeout, err)
	}
	return t.wrap(op, ref, err)
}

// Get opens ref on the regional and receives its metadata and first chunk.
// The returned body pulls the other chunks from the stream as it is read,
// so memory stays at about one chunk whatever the artifact's size. A
// stream that breaks mid-body is resumed (body.resume) when it may be;
// otherwise Read returns an error (never a clean EOF before Meta.Size
// bytes), so the router discards a partial write-back.
// The body must be closed; closing it early cancels the stream.
func (t *Tier) Get(ctx context.Context, ref messages.Ref) (messages.Meta, io.ReadCloser, error) {
	var (
		sctx   context.Context
		cancel context.CancelCauseFunc
		wd     *watchdog
		stream grpc.ServerStreamingClient[fabrikv1.GetResponse]
		first  *fabrikv1.GetResponse
	)
	// Nothing has reached the caller until the first response (the
	// metadata) arrives, so a stream that dies before it is retried.
	err := t.retryRead(ctx, func() error {
		sctx, cancel, wd = t.newStream(ctx)
		var err error
		stream, err = t.client.Get(sctx, &fabrikv1.GetRequest{Ref: refToProto(ref)})
		if err == nil {
			first, err = stream.Recv()
		}
		wd.disarm()
		if err != nil {
			if errors.Is(context.Cause(sctx), errStalled) {
				// A stalled regional already cost a whole timeout: report
				// it rather than wait another.
				err = &stalled{t.streamErr(sctx, "get", ref, err)}
			}
			cancel(nil)
		}
		return err
	})
	if err != nil {
		var s *stalled
		if errors.As(err, &s) {
			return messages.Meta{}, nil, s.err
		}
		return messages.Meta{}, nil, t.wrap("get", ref, err)
	}
	m := first.GetMeta()
	if m == nil {
		cancel(nil)
		return messages.Meta{}, nil, fmt.Errorf("fabrik tier %s: get %s: protocol error: first response carries no metadata", t.name, ref)
	}
	meta := metaFromProto(m)
	b := &body{t: t, ref: ref, parent: ctx, ctx: sctx, cancel: cancel, wd: wd, stream: stream, hash: meta.Hash, size: meta.Size}
	// The first chunk too arrives before anything reaches the caller, so
	// an artifact of one chunk (most are) is whole or absent: a stream cut
	// before it, and not resumed, is an error or a miss, not a body that
	// fails after the client was told "found".
	if meta.Size > 0 {
		if b.next(); b.err != nil {
			return messages.Meta{}, nil, b.err
		}
	}
	return meta, b, nil
}

// body is a Get stream read as an io.ReadCloser. Reads belong to one
// goroutine, like any reader's; Close may come from another (a router giving
// up on a slow download) and only touches what is safe to share: the
// current stream's cancel and watchdog, which a resume replaces under mu.
type body struct {
	t       *Tier
	ref     messages.Ref
	parent  context.Context // Get's: every stream of a resumed body derives from it
	ctx     context.Context // the current stream's
	mu      sync.Mutex      // guards cancel and wd against Close
	cancel  context.CancelCauseFunc
	wd      *watchdog
	stream  grpc.ServerStreamingClient[fabrikv1.GetResponse]
	hash    string
	size    int64
	got     int64
	resumes int
	chunk   []byte // the current chunk, released once read (fabrikv1.ReleaseChunk)
	cur     []byte // unread rest of the current chunk
	err     error  // sticky: io.EOF after a verified end, or the failure
	closed  atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, b.errClosed()
	}
	for len(b.cur) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.next()
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

// WriteTo lets io.Copy hand each chunk straight to the destination, saving
// a copy through io.Copy's own buffer.
func (b *body) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if b.closed.Load() {
			return total, b.errClosed()
		}
		for len(b.cur) == 0 {
			if b.err == io.EOF {
				return total, nil
			}
			if b.err != nil {
				return total, b.err
			}
			b.next()
		}
		n, err := w.Write(b.cur)
		total += int64(n)
		b.cur = b.cur[n:]
		if err != nil {
			return total, err
		}
	}
}

// next receives one message into cur, or sets err.
func (b *body) next() {
	b.release()
	b.wd.arm()
	msg, err := b.stream.Recv()
	b.wd.disarm()
	switch {
	case errors.Is(err, io.EOF):
		if b.got != b.size {
			b.err = fmt.Errorf("fabrik tier %s: get %s: stream ended after %d of %d bytes: %w", b.t.name, b.ref, b.got, b.size, io.ErrUnexpectedEOF)
		} else {
			b.err = io.EOF
		}
	case err != nil:
		broke := err
		for b.resumable(err) {
			if err = b.resume(); err == nil {
				return
			}
		}
		if b.resumes > 0 {
			err = fmt.Errorf("%w (the stream broke after %d of %d bytes: %v; resuming it failed %d times)", err, b.got, b.size, broke, b.resumes)
		}
		b.err = b.t.streamErr(b.ctx, "get", b.ref, err)
	case msg.GetMeta() != nil:
		b.err = fmt.Errorf("fabrik tier %s: get %s: protocol error: metadata in mid-stream", b.t.name, b.ref)
	default:
		b.chunk = msg.GetChunk()
		b.cur = b.chunk
		b.got += int64(len(b.cur))
		if b.got > b.size {
			b.cur = nil
			b.err = fmt.Errorf("fabrik tier %s: get %s: stream is longer than the declared %d bytes", b.t.name, b.ref, b.size)
		}
	}
	if b.err != nil {
		b.cancel(nil)
	}
}

// resumable reports whether a stream that broke mid-body with err may be
// reopened: the regional or the connection to it went away (UNAVAILABLE, or
// INTERNAL: a load balancer cutting the stream of a regional killed behind
// it reports "unexpected EOF"), the body's streams so far number fewer than
// readAttempts, and it was not a stall (that already cost a whole timeout),
// the caller's cancellation, or a regional that cannot be dialled at all
// (retrying would only delay the error).
func (b *body) resumable(err error) bool {
	if b.resumes >= readAttempts-1 || b.closed.Load() || b.parent.Err() != nil || errors.Is(context.Cause(b.ctx), errStalled) {
		return false
	}
	if c := status.Code(err); c != codes.Unavailable && c != codes.Internal {
		return false
	}
	return b.t.conn.GetState() != connectivity.TransientFailure
}

// resume replaces a stream that broke mid-body with a new Get of the same
// ref, skipping the b.got bytes the reader already has. The caller has
// received nothing but bytes of the artifact, so the stream may continue
// from another regional (behind a load balancer, the new stream lands on a
// live one) provided it serves the same artifact: same hash, same size.
// Nothing else changes for the reader, whose bytes are those of one
// uninterrupted stream; the router still verifies the hash at the end.
// On failure the body's current stream is the failed one, so that the
// error is reported (and stalls recognised) as its own.
func (b *body) resume() error {
	b.cancel(nil) // the broken stream
	// The pauses of retryRead: the broken stream was the first try.
	select {
	case <-b.parent.Done():
		return b.parent.Err()
	case <-time.After(retryBackoff << b.resumes):
	}
	b.resumes++
	ctx, cancel, wd := b.t.newStream(b.parent)
	b.mu.Lock()
	b.ctx, b.cancel, b.wd = ctx, cancel, wd
	b.mu.Unlock()
	if b.closed.Load() { // Close ran before the swap and cancelled the old stream
		cancel(nil)
		return errors.New("closed")
	}
	stream, err := b.t.client.Get(ctx, &fabrikv1.GetRequest{Ref: refToProto(b.ref)})
	if err == nil {
		b.stream = stream
		err = b.skip()
	}
	wd.disarm()
	if err != nil {
		cancel(nil)
	}
	return err
}

// skip reads the new stream's metadata, checks it names the artifact being
// read, and drops the first b.got bytes of content; what is left of the
// chunk that crosses b.got becomes cur.
func (b *body) skip() error {
	first, err := b.stream.Recv()
	if err != nil {
		return err
	}
	if m := first.GetMeta(); m == nil || m.GetHash() != b.hash || m.GetSize() != b.size {
		return fmt.Errorf("resumed stream serves another artifact (%s/%d, was %s/%d)", first.GetMeta().GetHash(), first.GetMeta().GetSize(), b.hash, b.size)
	}
	for left := b.got; left > 0; {
		b.wd.arm()
		msg, err := b.stream.Recv()
		b.wd.disarm()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("resumed stream ended before the %d bytes already read: %w", b.got, io.ErrUnexpectedEOF)
			}
			return err
		}
		c := msg.GetChunk()
		if msg.GetMeta() != nil {
			return errors.New("protocol error: metadata in mid-stream")
		}
		if int64(len(c)) > left {
			b.chunk, b.cur = c, c[left:]
			b.got += int64(len(b.cur))
			return nil
		}
		left -= int64(len(c))
		fabrikv1.ReleaseChunk(c)
	}
	return nil
}

// release hands the consumed chunk's buffer back to the codec.
func (b *body) release() {
	if b.chunk != nil {
		fabrikv1.ReleaseChunk(b.chunk)
		b.chunk, b.cur = nil, nil
	}
}

// Close releases the stream; reading it afterwards fails.
func (b *body) Close() error {
	b.closed.Store(true)
	b.mu.Lock()
	b.wd.disarm()
	b.cancel(nil)
	b.mu.Unlock()
	return nil
}

func (b *body) errClosed() error {
	return fmt.Errorf("fabrik tier %s: get %s: read after close", b.t.name, b.ref)
}

// Put streams exactly meta.Size bytes of body to the regional, which verifies
// size and hash before storing anything. A body that is shorter or longer
// than meta.Size aborts the stream (tier.ErrInvalid), so the regional never
// commits it.
func (t *Tier) Put(ctx context.Context, ref messages.Ref, meta messages.Meta, body io.Reader) error {
	sctx, cancel, wd := t.newStream(ctx)
	defer cancel(nil)
	defer wd.disarm()
	stream, err := t.client.Put(sctx)
	if err != nil {
		return t.streamErr(sctx, "put", ref, err)
	}
	hdr := &fabrikv1.PutHeader{Ref: refToProto(ref), Hash: meta.Hash, Size: meta.Size, BuildSystem: meta.BuildSystem, Attrs: meta.Attrs}
	if err := stream.Send(&fabrikv1.PutRequest{Payload: &fabrikv1.PutRequest_Header{Header: hdr}}); err != nil {
		return t.putSendErr(sctx, ref, stream, wd, err)
	}
	wd.disarm()

	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	chunk := &fabrikv1.PutRequest_Chunk{}
	msg := &fabrikv1.PutRequest{Payload: chunk}
	var sent int64
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			sent += int64(n)
			if sent > meta.Size {
				return fmt.Errorf("fabrik tier %s: put %s: %w: body is longer than the declared %d bytes", t.name, ref, tier.ErrInvalid, meta.Size)
			}
			chunk.Chunk = buf[:n]
			wd.arm()
			if err := stream.Send(msg); err != nil {
				return t.putSendErr(sctx, ref, stream, wd, err)
			}
			wd.disarm()
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("fabrik tier %s: put %s: read body: %w", t.name, ref, rerr)
		}
	}
	if sent != meta.Size {
		return fmt.Errorf("fabrik tier %s: put %s: %w: body has %d bytes, declared %d", t.name, ref, tier.ErrInvalid, sent, meta.Size)
	}
	wd.arm()
	res, err := stream.CloseAndRecv()
	if err != nil {
		return t.streamErr(sctx, "put", ref, err)
	}
	if res.GetHash() != meta.Hash || res.GetSize() != meta.Size {
		return fmt.Errorf("fabrik tier %s: put %s: regional stored %s/%d, sent %s/%d", t.name, ref, res.GetHash(), res.GetSize(), meta.Hash, meta.Size)
	}
	return nil
}

// putSendErr reports why a Put stream broke. Send returns a bare io.EOF when
// the regional ended the stream (a rejected header, a full disk); the real
// status only arrives through Recv.
func (t *Tier) putSendErr(ctx context.Context, ref messages.Ref, stream grpc.ClientStreamingClient[fabrikv1.PutRequest, fabrikv1.PutResponse], wd *watchdog, err error) error {
	if errors.Is(err, io.EOF) {
		wd.arm()
		_, err = stream.CloseAndRecv()
		if err == nil {
			err = errors.New("regional closed the stream early")
		}
	}
	return t.streamErr(ctx, "put", ref, err)
}
