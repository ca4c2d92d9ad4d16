package fabrikgrpc

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
)

// chunkPool recycles the read buffers of Get streams: a regional serving many
// edges would otherwise allocate a fresh buffer per chunk. gRPC marshals a
// message inside Send, so the buffer is free again as soon as Send returns.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, fabrikv1.ChunkSize); return &b }}

func (s *service) Get(req *fabrikv1.GetRequest, stream grpc.ServerStreamingServer[fabrikv1.GetResponse]) error {
	ctx := stream.Context()
	ref, err := refFromProto(req.GetRef())
	if err != nil {
		return err
	}
	if ctx, err = authorize(ctx, ref); err != nil {
		return err
	}
	res, err := s.cache.Get(ctx, ref)
	if err != nil {
		return s.status(ctx, "get", ref.String(), err)
	}
	if !res.Found {
		s.count(false)
		return status.Errorf(codes.NotFound, "%s not found", ref)
	}
	s.count(true)
	defer res.Body.Close()
	if err := stream.Send(&fabrikv1.GetResponse{Payload: &fabrikv1.GetResponse_Meta{Meta: metaToProto(res.Meta)}}); err != nil {
		return err
	}

	cs := newChunkSender(stream, res.Meta.Size)
	defer cs.release()
	// io.Copy lets the body pick the cheapest way: a write-back tee reads
	// its upstream straight into its own buffers and hands them over whole
	// (WriteTo), a file is read into the sender's buffer (ReadFrom).
	_, err = io.Copy(cs, res.Body)
	if err == nil {
		err = cs.flush()
	}
	switch {
	case cs.sendErr != nil:
		return cs.sendErr
	case errors.Is(err, errTooLong):
		return s.status(ctx, "get", ref.String(), fmt.Errorf("%w %d", err, res.Meta.Size))
	case err != nil:
		return s.status(ctx, "get", ref.String(), fmt.Errorf("read body: %w", err))
	}
	sent := cs.sent
	// A short body must end the stream with an error, never a clean EOF: the
	// client would otherwise store a truncated artifact as a hit.
	if sent != res.Meta.Size {
		return status.Errorf(codes.DataLoss, "get %s: body ended after %d of %d bytes", ref, sent, res.Meta.Size)
	}
	if s.opts.Metrics != nil {
		s.opts.Metrics.DownloadedBy("fabrik", sent)
	}
	return nil
}

// errTooLong: a body would send more than its recorded size.
var errTooLong = errors.New("body is longer than its recorded size")

// chunkSender turns a body into the chunk messages of a Get stream: chunks
// of fabrikv1.ChunkSize whatever pieces the body comes in. Writes of a
// whole chunk are sent as they are (gRPC marshals a message inside Send,
// so the caller may reuse its buffer when Write returns); smaller ones are
// gathered in a pooled buffer first.
type chunkSender struct {
	stream  grpc.ServerStreamingServer[fabrikv1.GetResponse]
	msg     *fabrikv1.GetResponse
	chunk   *fabrikv1.GetResponse_Chunk
	bp      *[]byte
	n       int   // bytes gathered in *bp
	size    int64 // the recorded size: no more may be sent
	sent    int64
	sendErr error // the stream failed: the client is gone
}

func newChunkSender(stream grpc.ServerStreamingServer[fabrikv1.GetResponse], size int64) *chunkSender {
	// One message reused for every chunk: only its slice header changes.
	chunk := &fabrikv1.GetResponse_Chunk{}
	return &chunkSender{stream: stream, chunk: chunk, msg: &fabrikv1.GetResponse{Payload: chunk}, size: size}
}

func (c *chunkSender) buf() []byte {
	if c.bp == nil {
		c.bp = chunkPool.Get().(*[]byte)
	}
	return *c.bp
}

func (c *chunkSender) release() {
	if c.bp != nil {
		chunkPool.Put(c.bp)
		c.bp = nil
	}
}

// send sends p as one chunk.
func (c *chunkSender) send(p []byte) error {
	if c.sent+int64(len(p)) > c.size {
		return errTooLong
	}
	c.chunk.Chunk = p
	err := c.stream.Send(c.msg)
	c.chunk.Chunk = nil
	if err != nil {
		c.sendErr = err
		return err
	}
	c.sent += int64(len(p))
	return nil
}

func (c *chunkSender) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if c.n == 0 && len(p) >= fabrikv1.ChunkSize {
			if err := c.send(p[:fabrikv1.ChunkSize]); err != nil {
				return written, err
			}
			p, written = p[fabrikv1.ChunkSize:], written+fabrikv1.ChunkSize
			continue
		}
		k := copy(c.buf()[c.n:], p)
		c.n += k
		p, written = p[k:], written+k
		if c.n == len(c.buf()) {
			if err := c.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// ReadFrom fills whole chunks from r: a body that is a network stream
// returning a few KiB per Read still goes out in full-sized chunks.
func (c *chunkSender) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		n, err := r.Read(c.buf()[c.n:])
		c.n += n
		total += int64(n)
		if c.n == len(c.buf()) {
			if ferr := c.flush(); ferr != nil {
				return total, ferr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// flush sends what was gathered.
func (c *chunkSender) flush() error {
	if c.n == 0 {
		return nil
	}
	err := c.send(c.buf()[:c.n])
	c.n = 0
	return err
}

// count records a hit or miss of the Fabrik protocol (build system label
// "fabrik": a regional does not know which tool an artifact came from).
func (s *service) count(hit bool) {
	switch {
	case s.opts.Metrics == nil:
	case hit:
		s.opts.Metrics.Hit("fabrik")
	default:
		s.opts.Metrics.Miss("fabrik")
	}
}

func (s *service) Put(stream grpc.ClientStreamingServer[fabrikv1.PutRequest, fabrikv1.PutResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "put stream is empty: the first message must be a header")
		}
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return status.Error(codes.InvalidArgument, "the first put message must be a header")
	}
	ref, meta, err := s.checkHeader(hdr)
	if err != nil {
		return err
	}
	if ctx, err = authorize(ctx, ref); err != nil {
		return err
	}

	staged, err := s.cache.Stage(meta.Hash, meta.Size)
	if err != nil {
		return s.status(ctx, "put", ref.String(), err)
	}
	// Until cache.Put takes ownership, every exit path removes the staging file:
	// a rejected or abandoned upload leaves nothing behind.
	committed := false
	defer func() {
		if !committed {
			staged.Discard()
		}
	}()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		data := req.GetChunk()
		if req.GetHeader() != nil {
			return status.Error(codes.InvalidArgument, "put stream carries a second header")
		}
		if len(data) > fabrikv1.MaxChunkSize {
			return status.Errorf(codes.InvalidArgument, "chunk of %d bytes exceeds the %d-byte limit", len(data), fabrikv1.MaxChunkSize)
		}
		_, err = staged.Write(data)
		fabrikv1.ReleaseChunk(data)
		if err != nil {
			return s.status(ctx, "put", ref.String(), err)
		}
	}
	if err := staged.Seal(); err != nil {
		return s.status(ctx, "put", ref.String(), err)
	}
	committed = true
	if err := s.cache.Put(ctx, ref, meta, staged); err != nil {
		return s.status(ctx, "put", ref.String(), err)
	}
	return stream.SendAndClose(&fabrikv1.PutResponse{Hash: staged.Hash(), Size: staged.Size()})
}

// checkHeader validates a Put header before any byte is staged.
func (s *service) checkHeader(h *fabrikv1.PutHeader) (messages.Ref, messages.Meta, error) {
	ref, err := refFromProto(h.GetRef())
	if err != nil {
		return ref, messages.Meta{}, err
	}
	meta := messages.Meta{Hash: h.GetHash(), Size: h.GetSize(), BuildSystem: h.GetBuildSystem(), Attrs: h.GetAttrs()}
	switch {
	case !IsSHA256Hex(meta.Hash):
		return ref, meta, status.Errorf(codes.InvalidArgument, "put %s: hash %q is not a lower-case hex SHA-256", ref, meta.Hash)
	case meta.Size < 0:
		return ref, meta, status.Errorf(codes.InvalidArgument, "put %s: negative size %d", ref, meta.Size)
	case s.opts.MaxArtifactSize > 0 && meta.Size > s.opts.MaxArtifactSize:
		return ref, meta, status.Errorf(codes.InvalidArgument, "put %s: %d bytes exceeds the %d-byte artifact limit", ref, meta.Size, s.opts.MaxArtifactSize)
	case ref.IsCAS() && ref.Key != meta.Hash:
		return ref, meta, status.Errorf(codes.InvalidArgument, "put %s: cas key differs from the declared hash %s", ref, meta.Hash)
	}
	return ref, meta, nil
}
