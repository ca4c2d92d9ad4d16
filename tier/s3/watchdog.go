package s3

import (
	"context"
	"fmt"
	"io"
	"time"
)

// watchdog cancels a request's context when S3 makes no progress for the
// tier's timeout. A plain deadline would either cut off a large transfer
// that is progressing or let a stalled one hang for as long as the deadline;
// an idle timer bounds only the waiting.
type watchdog struct {
	ctx    context.Context
	d      time.Duration
	timer  *time.Timer
	cancel context.CancelCauseFunc
}

// watch starts a watchdog that is armed: it fires d after the call unless
// kicked, paused or stopped. The caller must call stop.
func (t *Tier) watch(parent context.Context) *watchdog {
	ctx, cancel := context.WithCancelCause(parent)
	w := &watchdog{ctx: ctx, d: t.timeout, cancel: cancel}
	w.timer = time.AfterFunc(t.timeout, func() {
		cancel(fmt.Errorf("%w (%s)", ErrTimeout, t.timeout))
	})
	return w
}

// kick records progress and rearms the timer.
func (w *watchdog) kick() { w.timer.Reset(w.d) }

// pause disarms the timer while the wait is on our side (the consumer of a
// download), not on the server.
func (w *watchdog) pause() { w.timer.Stop() }

// stop disarms the timer and releases the context.
func (w *watchdog) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

// cause is the timeout error if the watchdog fired, else nil.
func (w *watchdog) cause() error {
	if w.ctx.Err() == nil {
		return nil
	}
	if c := context.Cause(w.ctx); c != nil && c != context.Canceled {
		return c
	}
	return nil
}

// downloadBody is a GetObject body whose reads are bounded by the watchdog:
// the timer runs only while a Read waits on the server, so a slow consumer
// does not count against S3.
type downloadBody struct {
	body io.ReadCloser
	w    *watchdog
	fail func(error) error
}

func (b *downloadBody) Read(p []byte) (int, error) {
	b.w.kick()
	n, err := b.body.Read(p)
	b.w.pause()
	if err != nil && err != io.EOF {
		err = b.fail(err)
	}
	return n, err
}

func (b *downloadBody) Close() error {
	b.w.stop()
	return b.body.Close()
}

// uploadBody kicks the watchdog each time the HTTP transport comes back for
// more bytes: that only happens once the server took the previous ones. It
// also notices a body that ends before its declared size, which the
// transport would otherwise report as an obscure retry failure.
type uploadBody struct {
	r     io.Reader
	w     *watchdog
	size  int64
	n     int64
	short bool
}

func (b *uploadBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if n > 0 {
		b.w.kick()
	}
	if err == io.EOF && b.n < b.size {
		b.short = true
	}
	return n, err
}

// seekableUploadBody keeps the caller's Seek so the SDK can rewind the body
// and retry a failed attempt instead of giving up.
type seekableUploadBody struct {
	*uploadBody
	s     io.Seeker
	start int64
}

func (b *seekableUploadBody) Seek(offset int64, whence int) (int64, error) {
	pos, err := b.s.Seek(offset, whence)
	if err == nil {
		b.n = pos - b.start
	}
	return pos, err
}

// wrapUpload returns body watched by w (seekable when body is) and the
// wrapper, to ask afterwards whether the body was short.
func wrapUpload(body io.Reader, size int64, w *watchdog) (io.Reader, *uploadBody) {
	ub := &uploadBody{r: body, w: w, size: size}
	if s, ok := body.(io.Seeker); ok {
		if start, err := s.Seek(0, io.SeekCurrent); err == nil {
			return &seekableUploadBody{uploadBody: ub, s: s, start: start}, ub
		}
	}
	return ub, ub
}
