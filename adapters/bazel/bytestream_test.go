package bazel

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/internal/cachetest"
	"github.com/tuist/fabrik-node/store"
)

func uploadName(d *repb.Digest, uuid string) string {
	return fmt.Sprintf("uploads/%s/blobs/%s/%d", uuid, d.Hash, d.SizeBytes)
}

// write sends data in chunks of chunk bytes starting at offset; finish
// controls finish_write on the last message.
func (e *env) write(ctx context.Context, name string, data []byte, offset int64, chunk int, finish bool) (*bytestream.WriteResponse, error) {
	stream, err := e.bs.Write(ctx)
	if err != nil {
		return nil, err
	}
	for first := true; first || len(data) > 0; first = false {
		n := min(chunk, len(data))
		req := &bytestream.WriteRequest{WriteOffset: offset, Data: data[:n], FinishWrite: finish && n == len(data)}
		if first {
			req.ResourceName = name
		}
		if err := stream.Send(req); err != nil {
			break // the server answered early; CloseAndRecv has its reply
		}
		data, offset = data[n:], offset+int64(n)
	}
	return stream.CloseAndRecv()
}

func TestByteStreamRoundTrip(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	data := pattern(3<<19+12345, 5)
	d := digestOf(data)
	resp, err := e.write(ctx, "ci/"+uploadName(d, "u1")+"/trailing/metadata", data, 0, 100<<10, true)
	if err != nil {
		t.Fatal(err)
	}
	if resp.CommittedSize != d.SizeBytes {
		t.Errorf("committed %d", resp.CommittedSize)
	}
	name := fmt.Sprintf("blobs/%s/%d", d.Hash, d.SizeBytes)
	for _, c := range []struct{ off, limit int64 }{{0, 0}, {1 << 20, 0}, {100, 1000}, {d.SizeBytes - 1, 0}, {d.SizeBytes, 0}, {5, d.SizeBytes * 2}} {
		got, err := e.read(ctx, "some/instance/"+name, c.off, c.limit)
		if err != nil {
			t.Fatalf("read %+v: %v", c, err)
		}
		end := int64(len(data))
		if c.limit > 0 {
			end = min(end, c.off+c.limit)
		}
		if !bytes.Equal(got, data[c.off:end]) {
			t.Errorf("read %+v: %d bytes differ from the original", c, len(got))
		}
	}

	// Writing it again is answered at once with the full size.
	resp, err = e.write(ctx, uploadName(d, "u2"), data, 0, 1<<20, true)
	if err != nil || resp.CommittedSize != d.SizeBytes {
		t.Errorf("rewrite: %v %v", resp, err)
	}
}

func TestByteStreamReadErrors(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	d := e.put(t, []byte("ten bytes!"))[0]
	name := fmt.Sprintf("blobs/%s/%d", d.Hash, d.SizeBytes)
	cases := []struct {
		name      string
		off, lim  int64
		want      codes.Code
		wantBytes int
	}{
		{name, 11, 0, codes.OutOfRange, 0},
		{name, 10, 0, codes.OK, 0},
		{name, -1, 0, codes.InvalidArgument, 0},
		{name, 0, -1, codes.InvalidArgument, 0},
		{"compressed-" + name[:5] + "/zstd" + name[5:], 0, 5, codes.InvalidArgument, 0},
		{fmt.Sprintf("blobs/%s/%d", digestOf([]byte("nope")).Hash, 4), 0, 0, codes.NotFound, 0},
		{fmt.Sprintf("blobs/%s/11", d.Hash), 0, 0, codes.NotFound, 0},
		{fmt.Sprintf("blobs/%s/0", emptyHash), 0, 0, codes.OK, 0},
		{fmt.Sprintf("blobs/%s/0", emptyHash), 1, 0, codes.OutOfRange, 0},
	}
	for _, c := range cases {
		got, err := e.read(ctx, c.name, c.off, c.lim)
		if status.Code(err) != c.want || len(got) != c.wantBytes {
			t.Errorf("read %s @%d limit %d: %v, %d bytes; want %v", c.name, c.off, c.lim, err, len(got), c.want)
		}
	}
}

func TestByteStreamMalformedNames(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	h := digestOf([]byte("x")).Hash
	for _, name := range []string{
		"", "blobs", "blobs/" + h, "blobs/" + h + "/1/extra", "blobs/abc/1", "blobs/" + h + "/-1",
		"blobs/" + h + "/ten", "compressed-blobs/deflate/" + h + "/1", "compressed-blobs/" + h + "/1",
		"blobs/blake3/" + h + "/1", "/blobs/" + h + "/1", "a/../blobs/" + h + "/1", "uploads/u/blobs/" + h + "/1",
	} {
		_, err := e.read(ctx, name, 0, 0)
		wantCode(t, err, codes.InvalidArgument)
	}
	data := []byte("x")
	for _, name := range []string{
		"blobs/" + h + "/1", "uploads/blobs/" + h + "/1", "uploads/u/" + h + "/1", "uploads/u/blobs/" + h,
		"uploads/u/blobs/" + h + "/-1", "uploads/u/compressed-blobs/gzip/" + h + "/1", "uploads/u/blobs/" + h[:63] + "/1",
		"operations/uploads/u/blobs/" + h + "/1",
	} {
		_, err := e.write(ctx, name, data, 0, 1, true)
		wantCode(t, err, codes.InvalidArgument)
	}
	if e.stored(t, digestOf(data)) {
		t.Error("a malformed write stored the blob")
	}
}

func TestByteStreamBadWrites(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	data := pattern(300<<10, 6)
	d := digestOf(data)

	wrong := append([]byte(nil), data...)
	wrong[1000] ^= 1
	_, err := e.write(ctx, uploadName(d, "wrong"), wrong, 0, 64<<10, true)
	wantCode(t, err, codes.InvalidArgument)

	// Short write: the client closes the stream without finish_write.
	_, err = e.write(ctx, uploadName(d, "short"), data[:100<<10], 0, 64<<10, false)
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.bs.QueryWriteStatus(ctx, &bytestream.QueryWriteStatusRequest{ResourceName: uploadName(d, "short")})
	wantCode(t, err, codes.NotFound)

	// Fewer bytes than the digest says, with finish_write.
	_, err = e.write(ctx, uploadName(d, "fewer"), data[:1000], 0, 64<<10, true)
	wantCode(t, err, codes.InvalidArgument)

	// More bytes than the digest says.
	_, err = e.write(ctx, uploadName(d, "more"), append(append([]byte(nil), data...), 1, 2, 3), 0, 64<<10, true)
	wantCode(t, err, codes.InvalidArgument)

	// A gap in write offsets.
	stream, err := e.bs.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&bytestream.WriteRequest{ResourceName: uploadName(d, "gap"), Data: data[:10]})
	stream.Send(&bytestream.WriteRequest{WriteOffset: 20, Data: data[20:], FinishWrite: true})
	_, err = stream.CloseAndRecv()
	wantCode(t, err, codes.InvalidArgument)

	// A first offset that no upload has reached.
	_, err = e.write(ctx, uploadName(d, "ahead"), data[10:], 10, 64<<10, true)
	wantCode(t, err, codes.InvalidArgument)

	// Garbage sent as zstd.
	_, err = e.write(ctx, "uploads/z/compressed-blobs/zstd/"+d.Hash+"/307200", data, 0, 64<<10, true)
	wantCode(t, err, codes.InvalidArgument)

	if e.stored(t, d) {
		t.Error("a rejected write stored the blob")
	}
}

func TestByteStreamCompressed(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	// Compressible data, so the compressed stream is visibly smaller.
	data := bytes.Repeat([]byte("fabrik bazel zstd round trip "), 80000)
	d := digestOf(data)
	compressed := zstdEncode(t, data)
	name := fmt.Sprintf("ci/uploads/c1/compressed-blobs/zstd/%s/%d", d.Hash, d.SizeBytes)
	resp, err := e.write(ctx, name, compressed, 0, 32<<10, true)
	if err != nil {
		t.Fatal(err)
	}
	if resp.CommittedSize != int64(len(compressed)) {
		t.Errorf("committed %d, want the %d compressed bytes", resp.CommittedSize, len(compressed))
	}
	plain, err := e.read(ctx, fmt.Sprintf("blobs/%s/%d", d.Hash, d.SizeBytes), 0, 0)
	if err != nil || !bytes.Equal(plain, data) {
		t.Fatalf("uncompressed read: %d bytes, %v", len(plain), err)
	}

	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, off := range []int64{0, 12345, d.SizeBytes} {
		z, err := e.read(ctx, fmt.Sprintf("ci/compressed-blobs/zstd/%s/%d", d.Hash, d.SizeBytes), off, 0)
		if err != nil {
			t.Fatal(err)
		}
		if off == 0 && len(z) >= len(data)/4 {
			t.Errorf("compressed read is %d bytes for %d", len(z), len(data))
		}
		got, err := dec.DecodeAll(z, nil)
		if err != nil || !bytes.Equal(got, data[off:]) {
			t.Errorf("compressed read at %d: %d bytes, %v", off, len(got), err)
		}
	}

	// An existing blob uploaded compressed again: answered at once with -1.
	resp, err = e.write(ctx, fmt.Sprintf("uploads/c2/compressed-blobs/zstd/%s/%d", d.Hash, d.SizeBytes), compressed, 0, 32<<10, true)
	if err != nil || resp.CommittedSize != -1 {
		t.Errorf("compressed rewrite: %v %v", resp, err)
	}

	// Compressed data that decodes to other content.
	other := pattern(1000, 9)
	od := digestOf(other)
	_, err = e.write(ctx, fmt.Sprintf("uploads/c3/compressed-blobs/zstd/%s/%d", od.Hash, od.SizeBytes), zstdEncode(t, pattern(1000, 8)), 0, 512, true)
	wantCode(t, err, codes.InvalidArgument)
	if e.stored(t, od) {
		t.Error("mismatching compressed upload was stored")
	}

	// The empty blob reads back as a valid, empty zstd stream.
	z, err := e.read(ctx, "compressed-blobs/zstd/"+emptyHash+"/0", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dec.DecodeAll(z, nil); err != nil || len(got) != 0 {
		t.Errorf("empty compressed read: %q %v", got, err)
	}
}

func TestByteStreamResumableWrite(t *testing.T) {
	e := newEnv(t, Options{})
	data := pattern(2<<20, 7)
	d := digestOf(data)
	name := uploadName(d, "resume-me")
	half := int64(1 << 20)

	// First attempt: half the data, then the connection's stream breaks.
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := e.bs.Write(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < half; off += 256 << 10 {
		req := &bytestream.WriteRequest{WriteOffset: off, Data: data[off : off+256<<10]}
		if off == 0 {
			req.ResourceName = name
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		st, err := e.bs.QueryWriteStatus(context.Background(), &bytestream.QueryWriteStatusRequest{ResourceName: name})
		return err == nil && st.CommittedSize == half && !st.Complete
	})
	cancel()

	// The client reconnects and continues where the server says it stopped.
	var resp *bytestream.WriteResponse
	waitFor(t, func() bool {
		resp, err = e.write(context.Background(), name, data[half:], half, 256<<10, true)
		return status.Code(err) != codes.Aborted // still owned by the dying stream
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.CommittedSize != d.SizeBytes || !e.stored(t, d) {
		t.Fatalf("resumed write: %v, stored %v", resp, e.stored(t, d))
	}
	st, err := e.bs.QueryWriteStatus(context.Background(), &bytestream.QueryWriteStatusRequest{ResourceName: name})
	if err != nil || !st.Complete || st.CommittedSize != d.SizeBytes {
		t.Errorf("status after completion: %v %v", st, err)
	}
	got, err := e.read(context.Background(), fmt.Sprintf("blobs/%s/%d", d.Hash, d.SizeBytes), 0, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read back: %d bytes, %v", len(got), err)
	}

	_, err = e.bs.QueryWriteStatus(context.Background(), &bytestream.QueryWriteStatusRequest{ResourceName: uploadName(digestOf([]byte("never")), "x")})
	wantCode(t, err, codes.NotFound)
	_, err = e.bs.QueryWriteStatus(context.Background(), &bytestream.QueryWriteStatusRequest{ResourceName: "blobs/x/1"})
	wantCode(t, err, codes.InvalidArgument)
}

func TestUploadTableExpiry(t *testing.T) {
	e := newEnv(t, Options{})
	tbl := newUploadTable(time.Hour, 2)
	for i := range 3 {
		name := fmt.Sprintf("u%d", i)
		up, ok, err := tbl.acquire(name, func() (*store.Staged, error) { return e.cache.Stage("", -1) })
		if err != nil || !ok {
			t.Fatal(err)
		}
		if _, ok, _ := tbl.acquire(name, nil); ok {
			t.Fatal("a busy upload was handed out twice")
		}
		tbl.park(name, up)
	}
	if _, ok := tbl.committed("u0"); ok || len(tbl.m) != 2 {
		t.Errorf("the oldest parked upload should go past the limit: %d left", len(tbl.m))
	}
	tbl.ttl = 0
	tbl.acquire("new", func() (*store.Staged, error) { return e.cache.Stage("", -1) })
	if len(tbl.m) != 1 {
		t.Errorf("expired uploads kept: %d", len(tbl.m))
	}
	tbl.discardAll()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCacheFullIsResourceExhausted(t *testing.T) {
	cache, _ := cachetest.NewWithStore(t, cachetest.Options{MaxSize: 64 << 10})
	e := newEnvWith(t, cache, Options{})
	ctx := context.Background()
	data := pattern(100<<10, 14)
	d := digestOf(data)
	_, err := e.write(ctx, uploadName(d, "full"), data, 0, 32<<10, true)
	wantCode(t, err, codes.ResourceExhausted)

	resp, err := e.cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{{Digest: d, Data: data}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := codes.Code(resp.Responses[0].Status.GetCode()); got != codes.ResourceExhausted {
		t.Errorf("batch upload into a full cache: %v", resp.Responses[0].Status)
	}
	if e.stored(t, d) {
		t.Error("stored past the size limit")
	}
}
