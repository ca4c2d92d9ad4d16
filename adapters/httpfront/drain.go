package httpfront

import (
	"io"
	"net/http"
	"strings"
)

// MaxDrain is how much of a refused request's body the front reads and
// discards before it sends the refusal. Without it, a handler that answers
// 401, 403 or 413 before reading the body makes net/http close the
// connection while the client is still writing, and a client that sends the
// whole body before reading (Gradle, Nx, Turborepo) sees a broken pipe
// instead of the status: Gradle then retries and turns its cache off for
// the build. Bodies declared larger than this are not drained (the
// connection closes as before): reading gigabytes to say "no" would be a
// cheaper attack than the one it prevents.
const MaxDrain = 64 << 20

// drainRefusals wraps a request that carries a body so that a refusal
// drains the unread rest of it first. Requests that sent
// "Expect: 100-continue" are left alone: their client waits for our answer
// before sending anything, and reading would make Go send "100 Continue".
func drainRefusals(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.ContentLength > MaxDrain {
		return w, r
	}
	if strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		return w, r
	}
	body := &trackedBody{ReadCloser: r.Body}
	r2 := *r
	r2.Body = body
	return &drainingWriter{ResponseWriter: w, body: body}, &r2
}

// trackedBody remembers whether the handler read the body to its end.
type trackedBody struct {
	io.ReadCloser
	done bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.done = true
	}
	return n, err
}

// drainingWriter drains the unread body before the first status that is
// not a success goes out.
type drainingWriter struct {
	http.ResponseWriter
	body    *trackedBody
	written bool
}

func (w *drainingWriter) WriteHeader(code int) {
	if !w.written {
		w.written = true
		if code >= 300 && !w.body.done {
			io.CopyN(io.Discard, w.body, MaxDrain)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *drainingWriter) Write(p []byte) (int, error) {
	w.written = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *drainingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes through for handlers that stream their answer.
func (w *drainingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
