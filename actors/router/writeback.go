package router

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

// writeBack wraps an upstream hit's body so that the bytes the client reads
// are also written to a staging file. The client gets its first byte
// immediately instead of after the whole download, and the disk and the
// hash are off its path: a writer goroutine appends the bytes to the
// staging file (teeBody), hashing them as it goes only while it keeps up;
// what it only appended is hashed when the file is sealed, after the last
// byte. Only when the hash and size verify does the router commit the
// staged file locally. A client that stops early or a body that fails
// mid-stream leaves nothing behind.
func (a *Actor) writeBack(ctx actor.Context, ref messages.Ref, r *messages.GetResult, served int) io.ReadCloser {
	if a.opts.Stager == nil {
		return r.Body
	}
	self, root, stager, log := ctx.Self(), ctx.ActorSystem().Root, a.opts.Stager, a.opts.Logger
	meta := r.Meta
	return newTee(r.Body, func() (*store.Staged, error) {
		st, err := stager.New(meta.Hash, meta.Size)
		if err != nil {
			log.Warn("write-back staging failed; serving without caching", "ref", ref.String(), "err", err)
		}
		return st, err
	}, func(s *store.Staged) {
		root.Send(self, &writeBackDone{put: &local.Put{Ref: ref, Meta: meta, Blob: s}, served: served})
	})
}

// commitWriteBack stores a verified upstream hit locally, then queues it
// for the writable upstreams above the one that served it.
func (a *Actor) commitWriteBack(ctx actor.Context, m *writeBackDone) {
	targets := a.writableAbove(m.served)
	m.put.Pin = a.queues(targets)
	fut := ctx.RequestFuture(a.opts.Local.PID(), m.put, localTimeout)
	ctx.ReenterAfter(fut, func(res any, err error) {
		r, err := actors.Reply[*local.PutResult](res, err)
		if err == nil {
			err = r.Err
		}
		if err != nil {
			m.put.Blob.Discard()
			a.opts.Logger.Warn("write-back to local tier failed", "ref", m.put.Ref.String(), "err", err)
			return
		}
		meta := m.put.Meta
		meta.Hash, meta.Size = m.put.Blob.Hash(), m.put.Blob.Size()
		a.enqueue(ctx, m.put.Ref, meta, targets, func() { a.unpin(ctx, m.put) })
	})
}

const (
	// teeChunk is the size of the buffers a write-back copies through: each
	// is one write(2) of the staging file and, through WriteTo, one write
	// to the client (one Fabrik chunk on a regional).
	teeChunk = 256 << 10
	// teeDepth bounds the buffers queued for one write-back's writer: 2 MiB
	// absorb the disk's stalls; past them the client waits for the disk, so
	// memory stays bounded whatever the artifact's size.
	teeDepth = 8
)

// teeBufs recycles the buffers of write-backs.
var teeBufs = sync.Pool{New: func() any { b := make([]byte, teeChunk); return &b }}

// teeBody is an upstream body whose bytes are copied, as the client reads
// them, into buffers that a writer goroutine appends to the staging file.
// Reads (Read or WriteTo) and Close belong to one goroutine, as for any
// reader; the writer only touches the queue and the staging file.
type teeBody struct {
	src io.ReadCloser
	w   *stageWriter // nil once the write-back ended (done, failed or given up)
	cur *[]byte      // the buffer being filled
	off int
}

// stageWriter is the goroutine side of a write-back. It creates the
// staging file itself, so the client's first byte waits for no file
// system call.
type stageWriter struct {
	create func() (*store.Staged, error)
	staged *store.Staged
	queue  chan teeChunkMsg
	// complete is set before queue is closed: the source ended with
	// io.EOF, so the staged file may be sealed (and then verified).
	complete bool
	failed   atomic.Bool // a staging write failed: the tee stops copying
	sealed   func(*store.Staged)
}

type teeChunkMsg struct {
	buf *[]byte
	n   int
}

func newTee(src io.ReadCloser, create func() (*store.Staged, error), sealed func(*store.Staged)) *teeBody {
	w := &stageWriter{create: create, queue: make(chan teeChunkMsg, teeDepth), sealed: sealed}
	go w.run()
	return &teeBody{src: src, w: w}
}

// run creates the staging file, appends queued buffers to it and at the end
// seals it (hash and size verified) and reports it, or discards it. When the
// file cannot be created it only recycles what the tee queues until the
// tee sees the failure.
func (w *stageWriter) run() {
	st, err := w.create()
	if err != nil {
		w.failed.Store(true)
		for c := range w.queue {
			teeBufs.Put(c.buf)
		}
		return
	}
	w.staged = st
	for c := range w.queue {
		if !w.failed.Load() {
			// Hash as it writes while it keeps up with the client; once
			// buffers queue up, only append and leave the hash to Seal
			// (store.Staged.Append): the client never waits for SHA-256.
			write := w.staged.Write
			if len(w.queue) > 0 {
				write = w.staged.Append
			}
			if _, err := write((*c.buf)[:c.n]); err != nil {
				w.failed.Store(true)
			}
		}
		teeBufs.Put(c.buf)
	}
	if !w.complete || w.failed.Load() {
		w.staged.Discard()
		return
	}
	// Seal hashes what was only appended and may fsync: the client already
	// has every byte and never waits for it.
	if w.staged.Seal() == nil {
		w.sealed(w.staged)
	}
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	if n > 0 && t.w != nil {
		t.stage(p[:n])
	}
	t.ended(err)
	return n, err
}

// WriteTo streams the body to dst reading the source straight into the
// write-back's buffers, so the bytes are copied once for both (io.Copy
// prefers it: the edge's HTTP responses and the regional's Fabrik chunks).
func (t *teeBody) WriteTo(dst io.Writer) (int64, error) {
	if t.w == nil {
		return io.Copy(dst, t.src)
	}
	var total int64
	for t.w != nil {
		if t.cur == nil {
			t.cur, t.off = teeBufs.Get().(*[]byte), 0
		}
		n, err := fill(t.src, (*t.cur)[t.off:])
		if n > 0 {
			m, werr := dst.Write((*t.cur)[t.off : t.off+n])
			total += int64(m)
			if werr != nil {
				t.finish(false)
				return total, werr
			}
			t.off += n
			if t.off == len(*t.cur) {
				t.push()
			}
		}
		if err != nil {
			t.ended(err)
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
	}
	// The write-back failed or ended: the rest is only the client's.
	n, err := io.Copy(dst, t.src)
	return total + n, err
}

// fill reads into p until it is full or the source fails or ends; unlike
// io.ReadFull it hands the source's error back as is, so a clean io.EOF is
// never confused with a body cut short (io.ErrUnexpectedEOF).
func fill(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// stage copies p into the write-back's buffers, queueing each full one.
func (t *teeBody) stage(p []byte) {
	for len(p) > 0 && t.w != nil {
		if t.cur == nil {
			t.cur, t.off = teeBufs.Get().(*[]byte), 0
		}
		c := copy((*t.cur)[t.off:], p)
		t.off += c
		p = p[c:]
		if t.off == len(*t.cur) {
			t.push()
		}
	}
}

// push queues the current buffer for the writer; it waits while the
// writer is teeDepth buffers behind (the disk is slower than the client).
func (t *teeBody) push() {
	if t.w.failed.Load() {
		t.finish(false)
		return
	}
	t.w.queue <- teeChunkMsg{buf: t.cur, n: t.off}
	t.cur, t.off = nil, 0
}

// ended finishes the write-back once the source returned an error: io.EOF
// completes it, anything else abandons it.
func (t *teeBody) ended(err error) {
	switch {
	case err == nil:
	case err == io.EOF:
		t.finish(true)
	default:
		t.finish(false)
	}
}

// finish hands the last partial buffer to the writer (complete) or
// recycles it, and closes the queue: the writer then seals or discards.
func (t *teeBody) finish(complete bool) {
	if t.w == nil {
		return
	}
	if t.cur != nil {
		if complete && t.off > 0 {
			t.w.queue <- teeChunkMsg{buf: t.cur, n: t.off}
		} else {
			teeBufs.Put(t.cur)
		}
		t.cur, t.off = nil, 0
	}
	t.w.complete = complete
	close(t.w.queue)
	t.w = nil
}

func (t *teeBody) Close() error {
	t.finish(false)
	return t.src.Close()
}
