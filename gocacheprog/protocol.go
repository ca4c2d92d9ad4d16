package gocacheprog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// The wire format of cmd/go/internal/cacheprog (Go 1.24+), which the go
// command does not export: one JSON object per line each way. A "put" with
// BodySize > 0 is followed by its body as a JSON string of standard base64
// on a line of its own (cmd/go writes the object, an extra newline, then
// `"<base64>"` and a newline). Responses may come in any order; their ID
// names the request.

// Cmd is a request's command.
type Cmd string

const (
	CmdGet   Cmd = "get"
	CmdPut   Cmd = "put"
	CmdClose Cmd = "close"
)

// Request is one message from the go command.
type Request struct {
	ID       int64
	Command  Cmd
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	// BodySize is the length of the body that follows a put; 0 or absent
	// means an empty body and no body line.
	BodySize int64 `json:",omitempty"`
}

// Response is one message to the go command.
type Response struct {
	ID  int64
	Err string `json:",omitempty"`
	// KnownCommands is sent once, first, with ID 0.
	KnownCommands []Cmd `json:",omitempty"`

	// get
	Miss     bool       `json:",omitempty"`
	OutputID []byte     `json:",omitempty"`
	Size     int64      `json:",omitempty"`
	Time     *time.Time `json:",omitempty"`
	// get (hit) and put: the body as a local file that lives until close.
	DiskPath string `json:",omitempty"`
}

// maxRequestLine bounds one request's JSON: IDs and sizes only, so a longer
// line is a broken stream.
const maxRequestLine = 64 << 10

// requestReader reads requests, and put bodies as streams, from the go
// command's stdin.
type requestReader struct {
	br *bufio.Reader
}

func newRequestReader(r io.Reader) *requestReader {
	return &requestReader{br: bufio.NewReaderSize(r, 256<<10)}
}

// Next reads the next request; io.EOF when the go command closed stdin
// between requests.
func (rr *requestReader) Next() (*Request, error) {
	for {
		line, err := rr.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("request line longer than %d bytes", rr.br.Size())
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return nil, err // io.EOF between requests is a clean end
			}
			continue // the blank line cmd/go writes after each object
		}
		if len(line) > maxRequestLine {
			return nil, fmt.Errorf("request line of %d bytes", len(line))
		}
		req := new(Request)
		if uerr := json.Unmarshal(line, req); uerr != nil {
			return nil, fmt.Errorf("malformed request %q: %w", bytes.TrimSpace(line), uerr)
		}
		if req.BodySize < 0 {
			return nil, fmt.Errorf("request %d: negative BodySize %d", req.ID, req.BodySize)
		}
		return req, nil
	}
}

// Body returns the decoded body that follows a put of size bytes. The
// caller must read it to EOF before the next Next; a body that is not a
// base64 JSON string, or not exactly size bytes, is an error from Read,
// since the stream cannot be trusted after it.
func (rr *requestReader) Body(size int64) io.Reader {
	if size == 0 {
		return bytes.NewReader(nil)
	}
	return &bodyReader{q: &quoted{br: rr.br}, want: size}
}

// bodyReader decodes a quoted base64 body and checks its length.
type bodyReader struct {
	q    *quoted
	dec  io.Reader
	want int64
	got  int64
	err  error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.dec == nil {
		if err := b.q.open(); err != nil {
			b.err = err
			return 0, err
		}
		b.dec = base64.NewDecoder(base64.StdEncoding, b.q)
	}
	n, err := b.dec.Read(p)
	b.got += int64(n)
	switch {
	case b.got > b.want:
		// Never hand out more than BodySize bytes: the excess is dropped
		// with the error.
		n -= int(b.got - b.want)
		b.got = b.want
		b.err = fmt.Errorf("put body longer than its BodySize %d", b.want)
		return n, b.err
	case err == io.EOF && b.got < b.want:
		b.err = fmt.Errorf("put body of %d bytes, BodySize %d", b.got, b.want)
		return n, b.err
	case err != nil && err != io.EOF:
		b.err = fmt.Errorf("put body: %w", err)
		return n, b.err
	}
	return n, err
}

// quoted reads the inside of a JSON string that holds only base64 (no
// escapes can occur in it): it skips the whitespace before the opening
// quote, then yields bytes up to the closing quote, which it consumes.
type quoted struct {
	br   *bufio.Reader
	done bool
}

func (q *quoted) open() error {
	for {
		c, err := q.br.ReadByte()
		if err != nil {
			return fmt.Errorf("put body missing: %w", noEOF(err))
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			return nil
		default:
			return fmt.Errorf("put body: expected a JSON string, found %q", c)
		}
	}
}

func (q *quoted) Read(p []byte) (int, error) {
	if q.done {
		return 0, io.EOF
	}
	if q.br.Buffered() == 0 {
		if _, err := q.br.Peek(1); err != nil {
			return 0, fmt.Errorf("put body unterminated: %w", noEOF(err))
		}
	}
	buf, _ := q.br.Peek(min(q.br.Buffered(), len(p)))
	if i := bytes.IndexByte(buf, '"'); i >= 0 {
		n := copy(p, buf[:i])
		q.br.Discard(i + 1)
		q.done = true
		return n, nil
	}
	n := copy(p, buf)
	q.br.Discard(n)
	return n, nil
}

// noEOF turns the end of the stream inside a message into an unexpected one.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// responseWriter writes whole responses, one per line, from any goroutine.
type responseWriter struct {
	mu  sync.Mutex
	w   *bufio.Writer
	enc *json.Encoder
}

func newResponseWriter(w io.Writer) *responseWriter {
	bw := bufio.NewWriter(w)
	return &responseWriter{w: bw, enc: json.NewEncoder(bw)}
}

// Write sends res and flushes it: the go command waits for each answer.
func (rw *responseWriter) Write(res *Response) error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if err := rw.enc.Encode(res); err != nil {
		return err
	}
	return rw.w.Flush()
}
