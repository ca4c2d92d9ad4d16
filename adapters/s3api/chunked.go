package s3api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// maxChunk bounds one aws-chunked chunk. A signed chunk is held in memory
// until its signature is checked (the SDK's stream signer signs a byte
// slice); clients send 64 KiB (minio-go) to 1 MiB chunks.
const maxChunk = 16 << 20

// maxLine bounds a chunk header or trailer line.
const maxLine = 4096

// chunkedReader decodes an aws-chunked body (STREAMING-* payloads):
//
//	<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n ... 0[;chunk-signature=<sig>]\r\n[<trailer>:<value>\r\n...]\r\n
//
// With a verifier every chunk's signature is checked, chained from the
// request's seed signature; a wrong one fails the read with
// SignatureDoesNotMatch, so the upload is discarded.
type chunkedReader struct {
	br      *bufio.Reader
	signer  *v4.StreamSigner // nil: signatures not checked
	q       *request
	signed  bool // chunks carry chunk-signature extensions
	buf     []byte
	pending []byte // verified data not yet returned (signed mode)
	left    int64  // unsigned mode: bytes left in the current chunk
	trailer http.Header
	err     error
}

func newChunkedReader(body io.Reader, q *request) *chunkedReader {
	c := &chunkedReader{br: bufio.NewReaderSize(body, 64<<10), q: q, trailer: http.Header{},
		signed: q.payload == streamingSigned || q.payload == streamingSignedTrailer}
	if c.signed && q.verified {
		c.signer = v4.NewStreamSigner(q.creds, "s3", q.region, q.seed)
	}
	return c
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for {
		if c.err != nil {
			return 0, c.err
		}
		if len(c.pending) > 0 {
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		}
		if c.left > 0 {
			n, err := c.br.Read(p[:min(int64(len(p)), c.left)])
			c.left -= int64(n)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err == nil && c.left == 0 {
				err = c.crlf()
			}
			if err != nil {
				c.err = err
			}
			return n, err
		}
		c.err = c.next()
	}
}

// next reads the following chunk header (and, when signed, the chunk).
func (c *chunkedReader) next() error {
	line, err := c.line()
	if err != nil {
		return err
	}
	sizeHex, ext, _ := strings.Cut(line, ";")
	size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
	if err != nil || size < 0 {
		return errIncompleteBody.with("malformed aws-chunked chunk header %q", line)
	}
	sig, hasSig := strings.CutPrefix(ext, "chunk-signature=")
	if c.signed && !hasSig {
		return errIncompleteBody.with("aws-chunked chunk without chunk-signature")
	}
	if !c.signed {
		if size == 0 {
			return c.trailers()
		}
		c.left = size
		return nil
	}
	if size > maxChunk {
		return errInvalidArgument.with("aws-chunked chunk of %d bytes exceeds %d", size, maxChunk)
	}
	if int64(cap(c.buf)) < size {
		c.buf = make([]byte, size)
	}
	data := c.buf[:size]
	if _, err := io.ReadFull(c.br, data); err != nil {
		return io.ErrUnexpectedEOF
	}
	if size > 0 {
		if err := c.crlf(); err != nil {
			return err
		}
	}
	if c.signer != nil {
		want, err := c.signer.GetSignature(context.Background(), nil, data, c.q.when)
		if err != nil {
			return errInternal
		}
		if !hmac.Equal([]byte(hex.EncodeToString(want)), []byte(strings.ToLower(sig))) {
			return errSignatureDoesNotMatch.with("chunk signature does not match")
		}
	}
	if size == 0 {
		return c.trailers()
	}
	c.pending = data
	return nil
}

// trailers reads the trailer lines after the last chunk, then ends the body.
func (c *chunkedReader) trailers() error {
	for {
		line, err := c.line()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			break // no final empty line: some clients end right after the last trailer
		}
		if err != nil {
			return err
		}
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return errIncompleteBody.with("malformed aws-chunked trailer %q", line)
		}
		c.trailer.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return io.EOF
}

func (c *chunkedReader) line() (string, error) {
	b, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(b) > maxLine {
		return "", errIncompleteBody.with("aws-chunked line too long")
	}
	if err != nil {
		if len(b) == 0 && err == io.EOF {
			return "", io.ErrUnexpectedEOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

func (c *chunkedReader) crlf() error {
	var b [2]byte
	if _, err := io.ReadFull(c.br, b[:]); err != nil {
		return io.ErrUnexpectedEOF
	}
	if b != [2]byte{'\r', '\n'} {
		return errIncompleteBody.with("aws-chunked chunk not followed by CRLF")
	}
	return nil
}

// decodedLength is the body's length once decoded (x-amz-decoded-content-length).
func decodedLength(r *http.Request) (int64, *apiError) {
	v := r.Header.Get("X-Amz-Decoded-Content-Length")
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errInvalidArgument.with("x-amz-decoded-content-length %q is not a length", v)
	}
	return n, nil
}
