package gocacheprog

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzRequestReader feeds what the go command writes to GOCACHEPROG's stdin:
// request lines, each put followed by its base64 JSON body. Reading never
// panics; a request is returned only with a non-negative BodySize; a body
// reader yields exactly BodySize bytes or an error, never more.
func FuzzRequestReader(f *testing.F) {
	f.Add([]byte("{\"ID\":1,\"Command\":\"get\",\"ActionID\":\"AAEC\"}\n"))
	f.Add([]byte("{\"ID\":2,\"Command\":\"put\",\"ActionID\":\"AAEC\",\"OutputID\":\"AwQ=\",\"BodySize\":3}\n\"aGV5\"\n\n{\"ID\":3,\"Command\":\"close\"}\n"))
	f.Add([]byte("{\"ID\":4,\"Command\":\"put\",\"BodySize\":5}\n\"aGV5\"\n"))
	f.Add([]byte("{\"ID\":5,\"BodySize\":-1}\n"))
	f.Add([]byte("not json\n"))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte("{\"ID\":6,\"Command\":\"put\",\"BodySize\":2}\nAAA\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rr := newRequestReader(bytes.NewReader(in))
		for range 64 {
			req, err := rr.Next()
			if err != nil {
				return
			}
			if req.BodySize < 0 {
				t.Fatalf("request with negative BodySize %d", req.BodySize)
			}
			if req.BodySize == 0 {
				continue
			}
			n, err := io.Copy(io.Discard, io.LimitReader(rr.Body(req.BodySize), req.BodySize+1))
			if n > req.BodySize {
				t.Fatalf("body of %d bytes for BodySize %d", n, req.BodySize)
			}
			if err == nil && n != req.BodySize {
				t.Fatalf("body of %d bytes for BodySize %d without an error", n, req.BodySize)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					t.Fatalf("a short body ended with a bare io.EOF")
				}
				return
			}
		}
	})
}
