package bazel

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/internal/cachetest"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

var emptyDigest = &repb.Digest{Hash: emptyHash, SizeBytes: 0}

// Both paths answer alike: one StatMany (router.Cache) and one Stat per
// digest (a Cache without adapters.BatchStat).
func TestFindMissingBlobs(t *testing.T) {
	t.Run("batched", func(t *testing.T) {
		c := cachetest.New(t)
		if _, ok := c.(adapters.BatchStat); !ok {
			t.Fatal("the node's cache does not offer adapters.BatchStat")
		}
		testFindMissingBlobs(t, c)
	})
	t.Run("per-digest", func(t *testing.T) { testFindMissingBlobs(t, perRef{cachetest.New(t)}) })
}

func testFindMissingBlobs(t *testing.T, cache adapters.Cache) {
	e := newEnvWith(t, cache, Options{})
	ctx := context.Background()
	have := e.put(t, []byte("one"), []byte("two"))
	absent := digestOf([]byte("three"))
	wrongSize := &repb.Digest{Hash: have[0].Hash, SizeBytes: 99}

	resp, err := e.cas.FindMissingBlobs(ctx, &repb.FindMissingBlobsRequest{
		BlobDigests: []*repb.Digest{have[0], absent, have[1], emptyDigest, absent, wrongSize},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, d := range resp.MissingBlobDigests {
		k := fmt.Sprintf("%s/%d", d.Hash, d.SizeBytes)
		if got[k] {
			t.Errorf("%s reported twice", k)
		}
		got[k] = true
	}
	if len(got) != 2 || !got[fmt.Sprintf("%s/%d", absent.Hash, absent.SizeBytes)] || !got[wrongSize.Hash+"/99"] {
		t.Errorf("missing = %v, want the absent blob and the wrong-size digest only", resp.MissingBlobDigests)
	}

	// The CAS is shared by instances: a blob uploaded without an instance
	// is present for any instance.
	resp, err = e.cas.FindMissingBlobs(ctx, &repb.FindMissingBlobsRequest{InstanceName: "other/team", BlobDigests: have})
	if err != nil || len(resp.MissingBlobDigests) != 0 {
		t.Errorf("other instance: %v %v", resp.GetMissingBlobDigests(), err)
	}
}

func TestFindMissingBlobsBadInput(t *testing.T) {
	e := newEnv(t, Options{})
	good := digestOf([]byte("x"))
	for name, req := range map[string]*repb.FindMissingBlobsRequest{
		"short hash":      {BlobDigests: []*repb.Digest{{Hash: "abc", SizeBytes: 1}}},
		"non-hex":         {BlobDigests: []*repb.Digest{{Hash: strings.Repeat("g", 64), SizeBytes: 1}}},
		"upper-case":      {BlobDigests: []*repb.Digest{{Hash: strings.ToUpper(good.Hash), SizeBytes: 1}}},
		"negative size":   {BlobDigests: []*repb.Digest{{Hash: good.Hash, SizeBytes: -1}}},
		"nil digest":      {BlobDigests: []*repb.Digest{nil}},
		"reserved name":   {InstanceName: "x/uploads", BlobDigests: []*repb.Digest{good}},
		"dot-dot name":    {InstanceName: "../x", BlobDigests: []*repb.Digest{good}},
		"digest function": {DigestFunction: repb.DigestFunction_SHA1, BlobDigests: []*repb.Digest{good}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.cas.FindMissingBlobs(context.Background(), req)
			wantCode(t, err, codes.InvalidArgument)
		})
	}
}

func TestBatchUpdateBlobs(t *testing.T) {
	e := newEnv(t, Options{MaxBatchBytes: 1 << 20})
	ctx := context.Background()
	good := []byte("good blob")
	wrongHash := digestOf([]byte("something else"))
	wrongHash.SizeBytes = int64(len("bad blob"))
	plain := pattern(100<<10, 1)
	compressed := zstdEncode(t, plain)

	resp, err := e.cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
		{Digest: digestOf(good), Data: good},
		{Digest: wrongHash, Data: []byte("bad blob")},
		{Digest: &repb.Digest{Hash: digestOf([]byte("short")).Hash, SizeBytes: 10}, Data: []byte("short")},
		{Digest: digestOf(plain), Data: compressed, Compressor: repb.Compressor_ZSTD},
		{Digest: digestOf([]byte("deflated")), Data: []byte("deflated"), Compressor: repb.Compressor_DEFLATE},
		{Digest: digestOf([]byte("corrupt")), Data: []byte("not zstd at all"), Compressor: repb.Compressor_ZSTD},
		{Digest: emptyDigest, Data: nil},
		{Digest: emptyDigest, Data: []byte("not empty")},
		{Digest: &repb.Digest{Hash: "xyz", SizeBytes: 3}, Data: []byte("xyz")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []codes.Code{codes.OK, codes.InvalidArgument, codes.InvalidArgument, codes.OK,
		codes.InvalidArgument, codes.InvalidArgument, codes.OK, codes.InvalidArgument, codes.InvalidArgument}
	for i, r := range resp.Responses {
		if codes.Code(r.Status.GetCode()) != want[i] {
			t.Errorf("blob %d: %v, want %v", i, r.Status, want[i])
		}
		if want[i] != codes.OK && r.Status.GetMessage() == "" {
			t.Errorf("blob %d: error without a message", i)
		}
	}
	if !e.stored(t, digestOf(good)) || !e.stored(t, digestOf(plain)) {
		t.Error("good blobs were not stored")
	}
	for _, d := range []*repb.Digest{wrongHash, digestOf([]byte("short")), digestOf([]byte("deflated")), digestOf([]byte("corrupt"))} {
		if e.stored(t, d) {
			t.Errorf("rejected blob %s was stored", d.Hash)
		}
	}
	// The compressed upload was stored uncompressed.
	got, err := e.read(ctx, "blobs/"+digestOf(plain).Hash+"/102400", 0, 0)
	if err != nil || !bytes.Equal(got, plain) {
		t.Errorf("read back compressed upload: %d bytes, %v", len(got), err)
	}

	// A batch over the limit is refused whole, and nothing in it is stored.
	big := pattern(600<<10, 2)
	big2 := pattern(600<<10, 3)
	_, err = e.cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
		{Digest: digestOf(big), Data: big}, {Digest: digestOf(big2), Data: big2},
	}})
	wantCode(t, err, codes.InvalidArgument)
	if e.stored(t, digestOf(big)) || e.stored(t, digestOf(big2)) {
		t.Error("oversized batch stored a blob")
	}
}

func TestBatchReadBlobs(t *testing.T) {
	e := newEnv(t, Options{MaxBatchBytes: 1 << 20})
	ctx := context.Background()
	blobs := [][]byte{[]byte("alpha"), pattern(64<<10, 4)}
	ds := e.put(t, blobs...)
	absent := digestOf([]byte("absent"))
	wrongSize := &repb.Digest{Hash: ds[0].Hash, SizeBytes: 4}
	resp, err := e.cas.BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{
		InstanceName: "main",
		Digests:      []*repb.Digest{ds[0], absent, ds[1], emptyDigest, wrongSize, {Hash: "nothex", SizeBytes: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		code codes.Code
		data []byte
	}{{codes.OK, blobs[0]}, {codes.NotFound, nil}, {codes.OK, blobs[1]}, {codes.OK, nil}, {codes.NotFound, nil}, {codes.InvalidArgument, nil}}
	for i, r := range resp.Responses {
		if codes.Code(r.Status.GetCode()) != want[i].code || !bytes.Equal(r.Data, want[i].data) {
			t.Errorf("blob %d: %v, %d bytes; want %v, %d bytes", i, r.Status, len(r.Data), want[i].code, len(want[i].data))
		}
	}

	huge := &repb.Digest{Hash: ds[1].Hash, SizeBytes: 2 << 20}
	_, err = e.cas.BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{Digests: []*repb.Digest{huge}})
	wantCode(t, err, codes.InvalidArgument)
}

// putDir stores a Directory proto in the CAS and returns its digest.
func (e *env) putDir(t *testing.T, dir *repb.Directory) *repb.Digest {
	t.Helper()
	b, err := proto.Marshal(dir)
	if err != nil {
		t.Fatal(err)
	}
	return e.put(t, b)[0]
}

func TestGetTree(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	file := e.put(t, []byte("file"))[0]
	leaf := e.putDir(t, &repb.Directory{Files: []*repb.FileNode{{Name: "f", Digest: file}}})
	missingDir := digestOf([]byte("a directory nobody uploaded"))
	mid := e.putDir(t, &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "leaf", Digest: leaf}}})
	root := e.putDir(t, &repb.Directory{Directories: []*repb.DirectoryNode{
		{Name: "a", Digest: mid}, {Name: "b", Digest: leaf}, {Name: "gone", Digest: missingDir},
	}})

	collect := func(pageSize int32) ([][]*repb.Directory, error) {
		stream, err := e.cas.GetTree(ctx, &repb.GetTreeRequest{RootDigest: root, PageSize: pageSize})
		if err != nil {
			return nil, err
		}
		var pages [][]*repb.Directory
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				return pages, nil
			}
			if err != nil {
				return pages, err
			}
			if resp.NextPageToken != "" {
				t.Errorf("unexpected page token %q", resp.NextPageToken)
			}
			pages = append(pages, resp.Directories)
		}
	}
	pages, err := collect(0)
	if err != nil {
		t.Fatal(err)
	}
	// root, mid, leaf: the shared leaf once, the missing directory skipped.
	if len(pages) != 1 || len(pages[0]) != 3 {
		t.Fatalf("pages %v", pages)
	}
	if !proto.Equal(pages[0][2].Files[0].Digest, file) {
		t.Errorf("leaf %v", pages[0][2])
	}
	pages, err = collect(1)
	if err != nil || len(pages) != 3 {
		t.Errorf("page size 1: %d pages, %v", len(pages), err)
	}

	stream, err := e.cas.GetTree(ctx, &repb.GetTreeRequest{RootDigest: missingDir})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.NotFound)

	stream, err = e.cas.GetTree(ctx, &repb.GetTreeRequest{RootDigest: root, PageToken: "7"})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.InvalidArgument)
}

func zstdEncode(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func TestBatchUpdateZstdBomb(t *testing.T) {
	e := newEnv(t, Options{})
	var z bytes.Buffer
	enc, err := zstd.NewWriter(&z, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(enc, io.LimitReader(zeros{}, 256<<20)); err != nil {
		t.Fatal(err)
	}
	enc.Close()
	claimed := digestOf(make([]byte, 1024))
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := e.cas.BatchUpdateBlobs(context.Background(), &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
		{Digest: claimed, Data: z.Bytes(), Compressor: repb.Compressor_ZSTD},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.Responses[0].Status.GetCode()) != codes.InvalidArgument {
		t.Errorf("%d compressed bytes expanding to 256 MiB under a 1 KiB digest: %v", z.Len(), resp.Responses[0].Status)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
		t.Errorf("decoding the bomb allocated %d MiB", grown>>20)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
