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

	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	// One message reused for every chunk: only its slice header changes.
	chunk := &fabrikv1.GetResponse_Chunk{}
	msg := &fabrikv1.GetResponse{Payload: chunk}
	var sent int64
	for {
		// ReadFull keeps chunks full-sized even when the body is a network
		// stream that returns a few KiB per Read (a read-through from S3).
		n, rerr := io.ReadFull(res.Body, buf)
		if n > 0 {
			sent += int64(n)
			if sent > res.Meta.Size {
				return s.status(ctx, "get", ref.String(), fmt.Errorf("body is longer than its recorded size %d", res.Meta.Size))
			}
			chunk.Chunk = buf[:n]
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return s.status(ctx, "get", ref.String(), fmt.Errorf("read body: %w", rerr))
		}
	}
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
		if _, err := staged.Write(data); err != nil {
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
