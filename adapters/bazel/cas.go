package bazel

import (
	"bytes"
	"context"
	"errors"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tuist/fabrik-node/tier"
)

// casServer serves ContentAddressableStorage. Blobs are shared by all
// instances (see the package doc); the instance name is only validated.
type casServer struct {
	repb.UnimplementedContentAddressableStorageServer
	srv *Server
}

// FindMissingBlobs answers with the request's own Digest messages (as
// bazel-remote does): nothing is allocated per missing digest, and a digest
// asked twice is answered once.
func (c *casServer) FindMissingBlobs(ctx context.Context, req *repb.FindMissingBlobsRequest) (*repb.FindMissingBlobsResponse, error) {
	defer c.srv.observe("find_missing_blobs", time.Now())
	if err := checkRequest(req.GetInstanceName(), req.GetDigestFunction()); err != nil {
		return nil, err
	}
	pds := req.GetBlobDigests()
	ds := make([]digest, len(pds))
	for i, pd := range pds {
		d, err := parseDigest(pd)
		if err != nil {
			return nil, invalid("FindMissingBlobs: %v", err)
		}
		ds[i] = d
	}
	missing, err := c.srv.missing(ctx, ds)
	if err != nil {
		return nil, c.srv.statusFor("find_missing_blobs", err)
	}
	out := make([]*repb.Digest, 0, len(missing))
	// Duplicates can only be among the missing: present ones are not
	// answered. Clients rarely send any, so only the missing are checked.
	var seen map[digest]struct{}
	if len(missing) > 1 {
		seen = make(map[digest]struct{}, len(missing))
	}
	for _, i := range missing {
		if seen != nil {
			if _, dup := seen[ds[i]]; dup {
				continue
			}
			seen[ds[i]] = struct{}{}
		}
		out = append(out, pds[i])
	}
	return &repb.FindMissingBlobsResponse{MissingBlobDigests: out}, nil
}

func (c *casServer) BatchUpdateBlobs(ctx context.Context, req *repb.BatchUpdateBlobsRequest) (*repb.BatchUpdateBlobsResponse, error) {
	defer c.srv.observe("batch_update_blobs", time.Now())
	if err := checkRequest(req.GetInstanceName(), req.GetDigestFunction()); err != nil {
		return nil, err
	}
	var total int64
	for _, r := range req.GetRequests() {
		total += max(r.GetDigest().GetSizeBytes(), 0)
	}
	if total > c.srv.maxBatch {
		return nil, invalid("BatchUpdateBlobs: blobs total %d bytes, over the %d-byte batch limit; use ByteStream.Write", total, c.srv.maxBatch)
	}
	reqs := req.GetRequests()
	resp := &repb.BatchUpdateBlobsResponse{Responses: make([]*repb.BatchUpdateBlobsResponse_Response, len(reqs))}
	forEach(len(reqs), statConcurrency, func(i int) {
		r := reqs[i]
		err := c.updateOne(ctx, r)
		resp.Responses[i] = &repb.BatchUpdateBlobsResponse_Response{Digest: r.GetDigest(), Status: rpcStatus(c.srv.statusFor("batch_update_blobs", err))}
	})
	return resp, nil
}

// updateOne verifies and stores one blob of a batch.
func (c *casServer) updateOne(ctx context.Context, r *repb.BatchUpdateBlobsRequest_Request) error {
	d, err := parseDigest(r.GetDigest())
	if err != nil {
		return invalid("%v", err)
	}
	if err := c.srv.checkSize(d); err != nil {
		return err
	}
	switch r.GetCompressor() {
	case repb.Compressor_IDENTITY:
		if int64(len(r.GetData())) != d.size {
			return invalid("blob %s: received %d bytes", d, len(r.GetData()))
		}
		c.srv.uploaded(d.size)
		return c.srv.storeBlob(ctx, d, bytes.NewReader(r.GetData()))
	case repb.Compressor_ZSTD:
		// Decoded as a stream into the staging file, which stops a small
		// entry that expands to gigabytes at the declared size.
		dec, err := newDecompressor(bytes.NewReader(r.GetData()))
		if err != nil {
			return err
		}
		defer dec.release()
		c.srv.uploaded(int64(len(r.GetData())))
		return c.srv.storeBlob(ctx, d, clientData{dec})
	default:
		return invalid("blob %s: compressor %s is not supported", d, r.GetCompressor())
	}
}

func (c *casServer) BatchReadBlobs(ctx context.Context, req *repb.BatchReadBlobsRequest) (*repb.BatchReadBlobsResponse, error) {
	defer c.srv.observe("batch_read_blobs", time.Now())
	if err := checkRequest(req.GetInstanceName(), req.GetDigestFunction()); err != nil {
		return nil, err
	}
	var total int64
	for _, pd := range req.GetDigests() {
		total += max(pd.GetSizeBytes(), 0)
	}
	if total > c.srv.maxBatch {
		return nil, invalid("BatchReadBlobs: blobs total %d bytes, over the %d-byte batch limit; use ByteStream.Read", total, c.srv.maxBatch)
	}
	// Blobs are returned uncompressed: identity is always acceptable, and
	// batched blobs are small enough that compression saves little.
	pds := req.GetDigests()
	resp := &repb.BatchReadBlobsResponse{Responses: make([]*repb.BatchReadBlobsResponse_Response, len(pds))}
	forEach(len(pds), statConcurrency, func(i int) {
		out := &repb.BatchReadBlobsResponse_Response{Digest: pds[i]}
		d, err := parseDigest(pds[i])
		if err != nil {
			err = invalid("%v", err)
		} else {
			out.Data, err = c.srv.readBlob(ctx, d)
		}
		if err == nil {
			c.srv.downloaded(d.size)
		}
		out.Status = rpcStatus(c.srv.statusFor("batch_read_blobs", err))
		resp.Responses[i] = out
	})
	capReply(resp)
	return resp, nil
}

// capReply keeps a batch reply under replyLimit counting each blob's
// framing, which the advertised max_batch_total_size_bytes (data only, as
// the REAPI defines it) does not: 5,000 small blobs under the data limit
// made a 4.4 MB reply. Blobs past the limit are answered RESOURCE_EXHAUSTED
// without data, so the client reads them again in another batch or by
// ByteStream; the ones that fit are still answered.
func capReply(resp *repb.BatchReadBlobsResponse) {
	var total int64
	for _, out := range resp.Responses {
		total += int64(len(out.Data)) + itemOverhead
		if total > replyLimit && len(out.Data) > 0 {
			out.Data = nil
			out.Status = rpcStatus(status.Errorf(codes.ResourceExhausted, "blob %s does not fit in this reply's %d bytes: read it again in another batch or with ByteStream.Read", out.Digest.GetHash(), replyLimit))
		}
	}
}

// treePageBytes bounds one GetTree response message.
const treePageBytes = 2 << 20

// GetTree streams every Directory reachable from the root, breadth first,
// each once. The whole tree is sent in this one call, in as many messages as
// page_size and the message size allow, so next_page_token is always empty
// and a page token from a client is refused. Directories missing from the
// CAS are skipped, as the REAPI allows; a missing root is NOT_FOUND.
func (c *casServer) GetTree(req *repb.GetTreeRequest, stream grpc.ServerStreamingServer[repb.GetTreeResponse]) error {
	defer c.srv.observe("get_tree", time.Now())
	if err := checkRequest(req.GetInstanceName(), req.GetDigestFunction()); err != nil {
		return err
	}
	root, err := parseDigest(req.GetRootDigest())
	if err != nil {
		return invalid("GetTree root: %v", err)
	}
	if req.GetPageToken() != "" {
		return invalid("GetTree: page token %q was not issued by this server", truncate(req.GetPageToken()))
	}
	ctx := stream.Context()
	page := &repb.GetTreeResponse{}
	pageBytes := 0
	flush := func() error {
		if len(page.Directories) == 0 {
			return nil
		}
		if err := stream.Send(page); err != nil {
			return err
		}
		page, pageBytes = &repb.GetTreeResponse{}, 0
		return nil
	}
	queue := []digest{root}
	seen := map[digest]bool{root: true}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		dir, err := c.srv.readDirectory(ctx, d)
		if errors.Is(err, tier.ErrNotFound) {
			if d == root {
				return status.Errorf(codes.NotFound, "GetTree: root directory %s is not in the CAS", d)
			}
			continue
		}
		if err != nil {
			return c.srv.statusFor("get_tree", err)
		}
		for _, child := range dir.GetDirectories() {
			cd, err := parseDigest(child.GetDigest())
			if err != nil {
				return invalid("GetTree: directory %s has a bad child %q: %v", d, child.GetName(), err)
			}
			if !seen[cd] {
				seen[cd] = true
				queue = append(queue, cd)
			}
		}
		size := proto.Size(dir)
		if (req.GetPageSize() > 0 && len(page.Directories) >= int(req.GetPageSize())) || pageBytes+size > treePageBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		page.Directories = append(page.Directories, dir)
		pageBytes += size
	}
	return flush()
}

// maxProtoBlob bounds the Directory, Tree and ActionResult blobs this adapter
// parses itself, so that a huge blob under a directory digest cannot make it
// allocate without limit.
const maxProtoBlob = 64 << 20

// readDirectory fetches and parses a Directory proto from the CAS.
func (s *Server) readDirectory(ctx context.Context, d digest) (*repb.Directory, error) {
	if d.size > maxProtoBlob {
		return nil, invalid("directory %s is larger than %d bytes", d, maxProtoBlob)
	}
	b, err := s.readBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	dir := &repb.Directory{}
	if err := proto.Unmarshal(b, dir); err != nil {
		return nil, invalid("blob %s is not a Directory: %v", d, err)
	}
	return dir, nil
}

// checkRequest validates the fields every REAPI request carries.
func checkRequest(instance string, f repb.DigestFunction_Value) error {
	if err := checkInstance(instance); err != nil {
		return err
	}
	return checkDigestFunction(f)
}

// rpcStatus converts a gRPC error (nil = OK) to the status proto batch
// responses carry per blob.
func rpcStatus(err error) *rpcstatus.Status {
	return status.Convert(err).Proto()
}
