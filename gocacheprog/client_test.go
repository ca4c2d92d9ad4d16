package gocacheprog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// goClient plays the go command's side of the protocol, framed exactly as
// cmd/go/internal/cache/prog.go writes it (json.Encoder's object and
// newline, one more newline, then `"<base64>"` and a newline when BodySize
// > 0), with requests in flight concurrently and answers matched by ID.
type goClient struct {
	t      testing.TB
	mu     sync.Mutex // guards nextID, inFlight
	nextID int64
	// inFlight maps a request ID to the channel its answer goes to.
	inFlight map[int64]chan *Response

	writeMu sync.Mutex // serialises writes, as cmd/go's writeMu does
	bw      *bufio.Writer
	jenc    *json.Encoder
	stdin   io.WriteCloser

	caps     *Response
	served   chan error // Serve's return
	readDone chan struct{}
	// readErr is the reader's failure, if any (set before readDone closes).
	readErr error
}

// startHelper runs h.Serve over pipes and returns the go-side client, once
// the helper announced its commands.
func startHelper(t testing.TB, h *Helper) *goClient {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &goClient{
		t: t, inFlight: map[int64]chan *Response{}, stdin: inW,
		served: make(chan error, 1), readDone: make(chan struct{}),
	}
	c.bw = bufio.NewWriter(inW)
	c.jenc = json.NewEncoder(c.bw)
	capc := make(chan *Response, 1)
	c.inFlight[0] = capc
	go func() {
		err := h.Serve(inR, outW)
		outW.Close()
		inR.Close()
		c.served <- err
	}()
	go c.readLoop(outR)
	select {
	case c.caps = <-capc:
	case <-time.After(5 * time.Second):
		t.Fatal("helper did not announce its commands within 5s")
	}
	return c
}

func (c *goClient) readLoop(r io.Reader) {
	defer close(c.readDone)
	dec := json.NewDecoder(r)
	for {
		res := new(Response)
		if err := dec.Decode(res); err != nil {
			if err != io.EOF {
				c.readErr = fmt.Errorf("malformed response: %w", err)
			}
			c.mu.Lock()
			for _, ch := range c.inFlight {
				close(ch)
			}
			c.inFlight = nil
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		ch, ok := c.inFlight[res.ID]
		delete(c.inFlight, res.ID)
		c.mu.Unlock()
		if !ok {
			c.readErr = fmt.Errorf("response for unknown request ID %d", res.ID)
			return
		}
		ch <- res
	}
}

// send writes req (and body, when BodySize > 0) and returns the channel its
// answer arrives on.
func (c *goClient) send(req *Request, body []byte) chan *Response {
	ch := make(chan *Response, 1)
	c.mu.Lock()
	c.nextID++
	req.ID = c.nextID
	if c.inFlight != nil {
		c.inFlight[req.ID] = ch
	} else {
		close(ch)
	}
	c.mu.Unlock()
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.jenc.Encode(req); err != nil {
		c.t.Errorf("write request: %v", err)
		return ch
	}
	c.bw.WriteByte('\n')
	if req.BodySize > 0 {
		c.bw.WriteByte('"')
		e := base64.NewEncoder(base64.StdEncoding, c.bw)
		e.Write(body)
		e.Close()
		c.bw.WriteString("\"\n")
	}
	if err := c.bw.Flush(); err != nil {
		c.t.Errorf("flush request: %v", err)
	}
	return ch
}

// do sends and waits for the answer (nil if the helper went away).
func (c *goClient) do(req *Request, body []byte) *Response {
	c.t.Helper()
	select {
	case res := <-c.send(req, body):
		return res
	case <-time.After(30 * time.Second):
		c.t.Fatalf("no answer to %s within 30s", req.Command)
		return nil
	}
}

// put stores body under action the way cmd/go's ProgCache.Put does: the
// output ID is the body's SHA-256, and BodySize is its length.
func (c *goClient) put(action []byte, body []byte) *Response {
	c.t.Helper()
	out := sha256.Sum256(body)
	res := c.do(&Request{Command: CmdPut, ActionID: action, OutputID: out[:], BodySize: int64(len(body))}, body)
	if res == nil || res.Err != "" || res.DiskPath == "" {
		c.t.Fatalf("put: %+v", res)
	}
	return res
}

func (c *goClient) get(action []byte) *Response {
	c.t.Helper()
	res := c.do(&Request{Command: CmdGet, ActionID: action}, nil)
	if res == nil || res.Err != "" {
		c.t.Fatalf("get: %+v", res)
	}
	return res
}

// close sends close, then closes stdin as cmd/go does, and returns Serve's
// result.
func (c *goClient) close() error {
	c.t.Helper()
	res := c.do(&Request{Command: CmdClose}, nil)
	if res == nil || res.Err != "" {
		c.t.Fatalf("close: %+v", res)
	}
	c.stdin.Close()
	<-c.readDone
	if c.readErr != nil {
		c.t.Fatal(c.readErr)
	}
	select {
	case err := <-c.served:
		return err
	case <-time.After(30 * time.Second):
		c.t.Fatal("helper still running 30s after close")
		return nil
	}
}

// actionID is a deterministic action ID for tests.
func actionID(i int) []byte {
	s := sha256.Sum256([]byte(fmt.Sprintf("action %d", i)))
	return s[:]
}

// mustHit checks that a get answer is a hit whose file holds body.
func mustHit(t testing.TB, res *Response, body []byte, read func(string) ([]byte, error)) {
	t.Helper()
	out := sha256.Sum256(body)
	if res.Miss || !bytes.Equal(res.OutputID, out[:]) || res.Size != int64(len(body)) || res.DiskPath == "" || res.Time == nil {
		t.Fatalf("get: %+v, want a hit of %d bytes, output %x", res, len(body), out)
	}
	got, err := read(res.DiskPath)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("DiskPath %s: %d bytes (err %v), want the %d put", res.DiskPath, len(got), err, len(body))
	}
}
