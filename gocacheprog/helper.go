// Package gocacheprog is `fabrik-node gocacheprog`: a GOCACHEPROG helper
// that gives the go command a build cache on a fabrik edge.
//
// The go command starts the helper and speaks JSON lines with it over
// stdin/stdout (protocol.go). Every output the go command reads is a file in
// the helper's local directory (localdir.go), a bounded cache of its own;
// a local miss asks the edge (edge.go, the /gocache/ endpoint of
// adapters/gocache), and every put goes to the edge in the background. The
// edge is an accelerator, never a dependency: down, slow or refusing, it
// turns gets into misses and keeps puts local, and the build goes on.
package gocacheprog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure one helper process.
type Options struct {
	// Dir is the local directory (required).
	Dir string
	// MaxSize bounds Dir in bytes (0: unbounded).
	MaxSize int64
	// Edge is the edge to read from and write to; URL "" means none.
	Edge EdgeOptions
	// FlushTimeout bounds how long close waits for pending uploads
	// (default 10 s).
	FlushTimeout time.Duration
	// QueueSize bounds the uploads waiting for the edge (default 4096);
	// Workers upload in parallel (default 4).
	QueueSize, Workers int
	// Log receives the helper's few messages (the go command's stderr).
	Log io.Writer
	// Verbose also logs a summary at close.
	Verbose bool
}

// Stats count what a helper did, for its summary and tests.
type Stats struct {
	Gets, LocalHits, EdgeHits, Misses, Puts atomic.Int64
}

// Helper serves one go command.
type Helper struct {
	opts     Options
	dir      *LocalDir
	edge     *Edge
	uploader *Uploader
	out      *responseWriter
	Stats    Stats

	// gets tracks get handlers still running, so close answers last.
	gets sync.WaitGroup
	// ctx ends edge fetches when the go command goes away.
	ctx    context.Context
	cancel context.CancelFunc
}

// New prepares a helper; Serve runs it.
func New(opts Options) *Helper {
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 10 * time.Second
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	h := &Helper{opts: opts}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

func (h *Helper) logf(format string, a ...any) {
	fmt.Fprintf(h.opts.Log, "[fabrik] gocacheprog: "+format+"\n", a...)
}

// Serve announces the helper's commands on out and answers the requests
// read from in until close or the end of in. It returns an error only when
// the stream itself is broken (the go command then fails whatever we do);
// a failing edge or local disk turns into misses and put errors.
func (h *Helper) Serve(in io.Reader, out io.Writer) error {
	defer h.cancel()
	h.out = newResponseWriter(out)
	dir, err := OpenLocalDir(h.opts.Dir, h.opts.MaxSize)
	if err != nil {
		// Without a directory there is no DiskPath to give; a private
		// temporary one keeps the build going (uncached across runs).
		tmp, terr := os.MkdirTemp("", "fabrik-gocacheprog-")
		if terr != nil {
			return fmt.Errorf("%v; and no temporary directory: %w", err, terr)
		}
		defer os.RemoveAll(tmp)
		h.logf("%v; using %s for this run", err, tmp)
		if dir, err = OpenLocalDir(tmp, h.opts.MaxSize); err != nil {
			return err
		}
	}
	h.dir = dir
	if h.opts.Edge.URL != "" {
		eo := h.opts.Edge
		eo.OnDown = h.edgeDown
		h.edge = NewEdge(eo)
		h.uploader = NewUploader(h.edge, h.opts.QueueSize, h.opts.Workers)
	}
	if err := h.out.Write(&Response{ID: 0, KnownCommands: []Cmd{CmdGet, CmdPut, CmdClose}}); err != nil {
		return fmt.Errorf("announce commands: %w", err)
	}

	rr := newRequestReader(in)
	for {
		req, err := rr.Next()
		if errors.Is(err, io.EOF) {
			h.finish()
			return nil // stdin closed without close: finish quietly
		}
		if err != nil {
			h.finish()
			return err
		}
		switch req.Command {
		case CmdGet:
			h.gets.Add(1)
			go func() {
				defer h.gets.Done()
				h.reply(h.get(req))
			}()
		case CmdPut:
			res, err := h.put(req, rr.Body(req.BodySize))
			if err != nil {
				// The body stream is broken: nothing after it can be read.
				h.reply(&Response{ID: req.ID, Err: err.Error()})
				h.finish()
				return err
			}
			h.reply(res)
		case CmdClose:
			h.finish()
			h.reply(&Response{ID: req.ID})
			return nil
		default:
			h.reply(&Response{ID: req.ID, Err: fmt.Sprintf("unknown command %q", req.Command)})
		}
	}
}

// reply writes one response; a go command that stopped reading is not
// something the helper can fix, so the error is only logged.
func (h *Helper) reply(res *Response) {
	if err := h.out.Write(res); err != nil {
		h.logf("writing response %d: %v", res.ID, err)
	}
}

// get answers from the local directory, else from the edge (stored
// locally first, since DiskPath must be a local file), else a miss.
func (h *Helper) get(req *Request) *Response {
	h.Stats.Gets.Add(1)
	if len(req.ActionID) == 0 {
		return &Response{ID: req.ID, Err: "get without ActionID"}
	}
	if e, path, ok := h.dir.Get(req.ActionID); ok {
		h.Stats.LocalHits.Add(1)
		return hit(req.ID, e, path)
	}
	if h.edge != nil {
		var e Entry
		var path string
		found, _ := h.edge.Fetch(h.ctx, req.ActionID, func(out []byte, size int64, when time.Time, body io.Reader) error {
			var err error
			e, path, err = h.dir.Put(req.ActionID, out, size, when, body)
			return err
		})
		if found {
			h.Stats.EdgeHits.Add(1)
			return hit(req.ID, e, path)
		}
	}
	h.Stats.Misses.Add(1)
	return &Response{ID: req.ID, Miss: true}
}

func hit(id int64, e Entry, path string) *Response {
	t := e.Time
	return &Response{ID: id, OutputID: e.OutputID[:], Size: e.Size, Time: &t, DiskPath: path}
}

// put stores the body locally and queues it for the edge. A local failure
// is an Err answer (the go command carries on without caching that
// output); the error return is for a broken stream only.
func (h *Helper) put(req *Request, body io.Reader) (*Response, error) {
	h.Stats.Puts.Add(1)
	// Framing errors surface from body; remember them apart from disk ones.
	fb := &framed{r: body}
	if len(req.ActionID) == 0 {
		if _, err := io.Copy(io.Discard, fb); err != nil {
			return nil, err
		}
		return &Response{ID: req.ID, Err: "put without ActionID"}, nil
	}
	e, path, err := h.dir.Put(req.ActionID, req.OutputID, req.BodySize, time.Time{}, fb)
	if fb.err != nil {
		return nil, fb.err
	}
	if err != nil {
		// Keep the stream in step: the rest of the body must be read.
		if _, derr := io.Copy(io.Discard, fb); derr != nil {
			return nil, derr
		}
		return &Response{ID: req.ID, Err: err.Error()}, nil
	}
	if h.uploader != nil {
		h.uploader.Enqueue(upload{action: req.ActionID, outputID: e.OutputID, size: e.Size, when: e.Time, path: path})
	}
	return &Response{ID: req.ID, DiskPath: path}, nil
}

// framed remembers the error its reader returned (other than EOF).
type framed struct {
	r   io.Reader
	err error
}

func (f *framed) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF {
		f.err = err
	}
	return n, err
}

// finish waits for running gets, then flushes uploads within the bound.
func (h *Helper) finish() {
	h.gets.Wait()
	var sent, failed, dropped int64
	if u := h.uploader; u != nil {
		pending := u.Pending()
		if !u.Flush(h.opts.FlushTimeout) {
			h.logf("uploads to the edge not finished %s after close (%d were queued); what was not sent stays in %s", h.opts.FlushTimeout, pending, h.dir.Root())
		}
		sent, failed, dropped = u.Sent.Load(), u.Failed.Load(), u.Dropped.Load()
	}
	if h.opts.Verbose {
		h.logf("%d gets (%d local, %d edge, %d misses), %d puts (%d uploaded, %d failed, %d dropped)",
			h.Stats.Gets.Load(), h.Stats.LocalHits.Load(), h.Stats.EdgeHits.Load(), h.Stats.Misses.Load(),
			h.Stats.Puts.Load(), sent, failed, dropped)
	}
}

// edgeDown tells the user once per outage that the edge is skipped, at
// most once per warnInterval across all helper processes sharing the
// directory (every go command runs its own helper; a dead edge must not
// add a line to each of them).
func (h *Helper) edgeDown(err error) {
	marker := filepath.Join(h.dir.Root(), "edge-down")
	if fi, serr := os.Stat(marker); serr == nil && time.Since(fi.ModTime()) < warnInterval && !h.opts.Verbose {
		return
	}
	os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+" "+err.Error()+"\n"), 0o644)
	h.logf("edge %s not usable (%v); skipping it for %s, building from the local cache %s", h.opts.Edge.URL, err, breakerCooldown, h.dir.Root())
}

const warnInterval = 10 * time.Minute
