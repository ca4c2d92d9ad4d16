package bazel

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

// max_artifact_size holds on every Bazel write path: a batch entry, a
// ByteStream write (plain, and compressed, where the tiny compressed body
// of a huge digest is refused before any byte is decompressed) and an
// action result. Nothing over the limit is stored.
func TestMaxArtifactSizeOnEveryWritePath(t *testing.T) {
	const limit = 1 << 20
	e := newEnv(t, Options{MaxArtifactSize: limit})
	ctx := context.Background()

	big := pattern(2<<20, 1)
	d := digestOf(big)
	resp, err := e.cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{{Digest: d, Data: big}}})
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.Responses[0].Status.GetCode()) != codes.InvalidArgument || e.stored(t, d) {
		t.Fatalf("2 MiB batch entry over a 1 MiB limit: %v, stored=%v", resp.Responses[0].Status, e.stored(t, d))
	}

	big3 := pattern(3<<20, 2)
	d3 := digestOf(big3)
	_, err = e.write(ctx, uploadName(d3, "2b8a3d4e-0000-4000-8000-000000000001"), big3, 0, 256<<10, true)
	wantCode(t, err, codes.InvalidArgument)
	if e.stored(t, d3) {
		t.Fatal("3 MiB ByteStream write over the limit was stored")
	}

	// 64 MiB of zeros compress to a few KB: the declared size decides.
	zero := make([]byte, 64<<20)
	dz := digestOf(zero)
	name := fmt.Sprintf("uploads/2b8a3d4e-0000-4000-8000-000000000002/compressed-blobs/zstd/%s/%d", dz.Hash, dz.SizeBytes)
	_, err = e.write(ctx, name, zstdEncode(t, zero), 0, 256<<10, true)
	wantCode(t, err, codes.InvalidArgument)
	if e.stored(t, dz) {
		t.Fatal("a small zstd upload expanded into a 64 MiB blob over the limit")
	}

	// An action result over the limit (its output list alone is > 1 MiB).
	res := &repb.ActionResult{}
	for i := range 20000 {
		res.OutputFiles = append(res.OutputFiles, &repb.OutputFile{Path: fmt.Sprintf("out/a-long-enough-output-path-%06d", i), Digest: emptyDigest})
	}
	_, err = e.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{ActionDigest: digestOf([]byte("big action")), ActionResult: res})
	wantCode(t, err, codes.InvalidArgument)
}

// Inlining counts the result's own size: a result plus 4.1 MB of stdout
// stays under the 4 MiB message limit (stdout then left to fetch by digest),
// and only what the request asks for is inlined.
func TestInlineBudgetCountsTheResult(t *testing.T) {
	e := newEnv(t, Options{MaxBatchBytes: 8 << 20})
	ctx := context.Background()
	stdout := pattern(4100<<10, 3)
	stderr := []byte("warning\n")
	file := pattern(3<<20, 4)
	ds := e.putLarge(t, stdout, stderr, file)
	action := digestOf([]byte("inline action"))
	result := &repb.ActionResult{StdoutDigest: ds[0], StderrDigest: ds[1],
		OutputFiles: []*repb.OutputFile{{Path: "out/f", Digest: ds[2]}}}
	if _, err := e.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{ActionDigest: action, ActionResult: result}); err != nil {
		t.Fatal(err)
	}
	got, err := e.ac.GetActionResult(ctx, &repb.GetActionResultRequest{ActionDigest: action, InlineStdout: true, InlineOutputFiles: []string{"out/f"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(got); n > 4<<20 {
		t.Fatalf("reply of %d bytes exceeds the 4 MiB message limit", n)
	}
	if len(got.StdoutRaw) != 0 {
		t.Error("4.1 MB of stdout inlined: it cannot fit")
	}
	if !bytes.Equal(got.OutputFiles[0].Contents, file) {
		t.Error("the 3 MiB output file that fits was not inlined")
	}
	if len(got.StderrRaw) != 0 {
		t.Error("stderr inlined without being asked")
	}
}

// putLarge uploads blobs one by one through ByteStream (a batch would be
// over the limit).
func (e *env) putLarge(t *testing.T, blobs ...[]byte) []*repb.Digest {
	t.Helper()
	var ds []*repb.Digest
	for i, b := range blobs {
		d := digestOf(b)
		if _, err := e.write(context.Background(), uploadName(d, fmt.Sprintf("2b8a3d4e-0000-4000-8000-%012d", i)), b, 0, 256<<10, true); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

// A batch read of thousands of small blobs under the data limit still
// produces a reply under the message limit: entries past it are answered
// RESOURCE_EXHAUSTED without data, the rest are served.
func TestBatchReadReplyIsCapped(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	var digests []*repb.Digest
	for i := 0; i < 5000; i += 500 {
		var blobs [][]byte
		for j := i; j < i+500; j++ {
			blobs = append(blobs, pattern(800, byte(j))[:799+j%2])
			blobs[len(blobs)-1][0], blobs[len(blobs)-1][1] = byte(j), byte(j>>8)
		}
		digests = append(digests, e.put(t, blobs...)...)
	}
	resp, err := e.cas.BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{Digests: digests})
	if err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(resp); n > 4<<20 {
		t.Fatalf("batch reply of %d bytes exceeds the 4 MiB message limit", n)
	}
	served, capped := 0, 0
	for _, r := range resp.Responses {
		switch codes.Code(r.Status.GetCode()) {
		case codes.OK:
			served++
		case codes.ResourceExhausted:
			capped++
		default:
			t.Fatalf("unexpected status %v", r.Status)
		}
	}
	if capped == 0 || served < 4000 {
		t.Fatalf("served %d, capped %d: want most served and the overflow capped", served, capped)
	}
}

// Output paths must be relative and clean; anything that could make a
// client write outside its output tree is refused and nothing is stored.
func TestOutputPathsValidated(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	for _, p := range []string{"", "/etc/passwd", "../escape", "out/../../x", "out//x", "out/./x", "out/"} {
		res := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: p, Digest: emptyDigest}}}
		action := digestOf([]byte("path " + p))
		_, err := e.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{ActionDigest: action, ActionResult: res})
		wantCode(t, err, codes.InvalidArgument)
		res = &repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{Path: p, TreeDigest: emptyDigest}}}
		_, err = e.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{ActionDigest: action, ActionResult: res})
		wantCode(t, err, codes.InvalidArgument)
		res = &repb.ActionResult{OutputSymlinks: []*repb.OutputSymlink{{Path: p, Target: "t"}}}
		_, err = e.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{ActionDigest: action, ActionResult: res})
		wantCode(t, err, codes.InvalidArgument)
		_, err = e.ac.GetActionResult(ctx, &repb.GetActionResultRequest{ActionDigest: action})
		wantCode(t, err, codes.NotFound)
	}
}

// Data a client inlined in UpdateActionResult is stored in the CAS and the
// stored result names it by digest, so a hit never points at blobs that
// exist nowhere; inlined data that contradicts its digest is refused.
func TestUpdateActionResultDeinlines(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	stdout, file := []byte("inlined stdout\n"), []byte("inlined file")
	action := digestOf([]byte("deinline"))
	res := &repb.ActionResult{StdoutRaw: stdout, OutputFiles: []*repb.OutputFile{{Path: "o", Digest: digestOf(file), Contents: file}}}
	if _, err := e.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{ActionDigest: action, ActionResult: res}); err != nil {
		t.Fatal(err)
	}
	if !e.stored(t, digestOf(stdout)) || !e.stored(t, digestOf(file)) {
		t.Fatal("inlined data was not stored in the CAS")
	}
	got, err := e.ac.GetActionResult(ctx, &repb.GetActionResultRequest{ActionDigest: action})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.StdoutRaw) != 0 || len(got.OutputFiles[0].Contents) != 0 || !proto.Equal(got.StdoutDigest, digestOf(stdout)) {
		t.Fatalf("stored result still inlines, or lacks the digest: %v", got)
	}
	bad := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "o", Digest: digestOf([]byte("other")), Contents: file}}}
	_, err = e.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{ActionDigest: digestOf([]byte("bad")), ActionResult: bad})
	wantCode(t, err, codes.InvalidArgument)
}
