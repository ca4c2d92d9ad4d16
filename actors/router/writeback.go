package router

import (
	"io"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/actors/local"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/store"
)

// writeBack wraps an upstream hit's body so that the bytes the client reads
// are also written to a staging file (hashed on the way). The client gets its
// first byte immediately instead of after the whole download; when it has
// read everything and the hash verifies, the router commits the staged file
// locally. A client that stops early or a body that fails mid-stream leaves
// nothing behind.
func (a *Actor) writeBack(ctx actor.Context, ref messages.Ref, r *messages.GetResult, served int) io.ReadCloser {
	if a.opts.Stager == nil {
		return r.Body
	}
	st, err := a.opts.Stager.New(r.Meta.Hash, r.Meta.Size)
	if err != nil {
		a.opts.Logger.Warn("write-back staging failed; serving without caching", "ref", ref.String(), "err", err)
		return r.Body
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	meta := r.Meta
	return &teeBody{src: r.Body, staged: st, sealed: func(s *store.Staged) {
		root.Send(self, &writeBackDone{put: &local.Put{Ref: ref, Meta: meta, Blob: s}, served: served})
	}}
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

type teeBody struct {
	src    io.ReadCloser
	staged *store.Staged
	sealed func(*store.Staged)
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	if n > 0 && t.staged != nil {
		if _, werr := t.staged.Write(p[:n]); werr != nil {
			t.staged.Discard()
			t.staged = nil
		}
	}
	if err == io.EOF && t.staged != nil {
		st := t.staged
		t.staged = nil
		// Seal may fsync (milliseconds per layer): the client already has
		// every byte, so its last read must not wait for the local copy.
		go func() {
			if st.Seal() == nil {
				t.sealed(st)
			}
		}()
	}
	return n, err
}

func (t *teeBody) Close() error {
	if t.staged != nil {
		t.staged.Discard()
		t.staged = nil
	}
	return t.src.Close()
}
