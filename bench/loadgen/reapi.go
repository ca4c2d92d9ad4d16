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

	req := &repb.FindMissingBlobsRequest{BlobDigests: digests}
	want := o.digests - len(present)
	var next atomic.Int64
	clients := make([]repb.ContentAddressableStorageClient, len(conns))
	for i, c := range conns {
		clients[i] = repb.NewContentAddressableStorageClient(c)
	}
	do := func(ctx context.Context, _ int, _ []byte) result {
		c := clients[int(next.Add(1))%len(clients)]
		start := time.Now()
		resp, err := c.FindMissingBlobs(ctx, req)
		took := time.Since(start)
		if err != nil {
			return result{err: fmt.Errorf("FindMissingBlobs: %w", err)}
		}
		if got := len(resp.GetMissingBlobDigests()); got != want {
			return result{err: fmt.Errorf("FindMissingBlobs answered %d missing of %d, want %d", got, o.digests, want)}
		}
		return result{took: took}
	}
	return do, closeAll, nil
}
