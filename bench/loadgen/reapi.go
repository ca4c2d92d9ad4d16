package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// uploadBatch is how many blobs one BatchUpdateBlobs carries while the
// present half is seeded: far under any server's batch limit.
const uploadBatch = 100

// findMissingRequests prepares FindMissingBlobs calls of o.digests digests
// against the REAPI server at o.grpc: half of the digests (the even ones)
// are uploaded first with BatchUpdateBlobs, untimed, so every call answers
// exactly the other half, which each call checks. Calls take the o.clients
// connections in turn (Bazel's channel pool spreads calls over several too),
// so one HTTP/2 connection's framing is not what is measured.
func findMissingRequests(o options) (requestFunc, func(), error) {
	if o.grpc == "" {
		return nil, nil, fmt.Errorf("-op findmissing needs -grpc host:port")
	}
	if o.digests < 2 {
		return nil, nil, fmt.Errorf("-digests %d: want at least 2", o.digests)
	}
	conns := make([]*grpc.ClientConn, o.clients)
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	for i := range conns {
		c, err := grpc.NewClient(o.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("dial %s: %w", o.grpc, err)
		}
		conns[i] = c
	}

	digests := make([]*repb.Digest, o.digests)
	var present []*repb.BatchUpdateBlobsRequest_Request
	for i := range digests {
		// Small distinct blobs, as most of a build's action inputs are.
		blob := []byte(fmt.Sprintf("fabrik bench blob %d of run %d, %d digests", i, o.run, o.digests))
		sum := sha256.Sum256(blob)
		digests[i] = &repb.Digest{Hash: hex.EncodeToString(sum[:]), SizeBytes: int64(len(blob))}
		if i%2 == 0 {
			present = append(present, &repb.BatchUpdateBlobsRequest_Request{Digest: digests[i], Data: blob})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cas := repb.NewContentAddressableStorageClient(conns[0])
	for start := 0; start < len(present); start += uploadBatch {
		batch := present[start:min(start+uploadBatch, len(present))]
		resp, err := cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{Requests: batch})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("upload the present half: BatchUpdateBlobs: %w", err)
		}
		for _, r := range resp.GetResponses() {
			if r.GetStatus().GetCode() != 0 {
				closeAll()
				return nil, nil, fmt.Errorf("upload the present half: blob %s: %s", r.GetDigest().GetHash(), r.GetStatus().GetMessage())
			}
		}
	}

	// The request is encoded once and the answer only counted: the load
	// generator shares the two cores with the server, and encoding the
	// same 100 or 1,000 digests and decoding every answer cost it about
	// as much CPU per call as the node spent answering.
	reqBytes, err := proto.Marshal(&repb.FindMissingBlobsRequest{BlobDigests: digests})
	if err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("encode FindMissingBlobs: %w", err)
	}
	want := o.digests - len(present)
	var next atomic.Int64
	do := func(ctx context.Context, _ int, _ []byte) result {
		c := conns[int(next.Add(1))%len(conns)]
		var resp rawMessage
		start := time.Now()
		err := c.Invoke(ctx, findMissingMethod, rawMessage(reqBytes), &resp, grpc.ForceCodec(rawCodec{}))
		took := time.Since(start)
		if err != nil {
			return result{err: fmt.Errorf("FindMissingBlobs: %w", err)}
		}
		got, err := countMissing(resp)
		if err != nil {
			return result{err: fmt.Errorf("FindMissingBlobs answer: %w", err)}
		}
		if got != want {
			return result{err: fmt.Errorf("FindMissingBlobs answered %d missing of %d, want %d", got, o.digests, want)}
		}
		return result{took: took}
	}
	return do, closeAll, nil
}

const findMissingMethod = "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs"

// rawMessage is an encoded protobuf message, sent and received as it is.
type rawMessage []byte

// rawCodec passes rawMessage bytes through. Its name is proto's, so the
// call's content type is the one every REAPI server expects.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(rawMessage)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot send %T", v)
	}
	return m, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*rawMessage)
	if !ok {
		return fmt.Errorf("rawCodec: cannot receive into %T", v)
	}
	*m = append((*m)[:0], data...)
	return nil
}

// countMissing counts the missing_blob_digests (field 2) of an encoded
// FindMissingBlobsResponse.
func countMissing(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		if num == 2 && typ == protowire.BytesType {
			n++
		}
		b = b[l:]
	}
	return n, nil
}
