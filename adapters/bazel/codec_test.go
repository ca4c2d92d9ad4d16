package bazel

import (
	"bytes"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Field numbers of FindMissingBlobsRequest and Digest.
const (
	fmInstanceName  protowire.Number = 1
	fmBlobDigests   protowire.Number = 2
	digestHash      protowire.Number = 1
	digestSizeBytes protowire.Number = 2
)

// findMissingSeeds are wire forms of FindMissingBlobsRequest, usual and
// not: what the fast decoder takes and what it must leave to proto.
func findMissingSeeds() [][]byte {
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			panic(err)
		}
		return b
	}
	digest := func(fields ...[]byte) []byte {
		var b []byte
		for _, f := range fields {
			b = append(b, f...)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, fmBlobDigests, protowire.BytesType), b)
	}
	hash := func(h string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, digestHash, protowire.BytesType), h)
	}
	size := func(n uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, digestSizeBytes, protowire.VarintType), n)
	}
	other := strings.Repeat("ab", 32)
	return [][]byte{
		nil,
		marshal(&repb.FindMissingBlobsRequest{BlobDigests: []*repb.Digest{{Hash: fuzzHash, SizeBytes: 0}, {Hash: other, SizeBytes: 12345}}}),
		marshal(&repb.FindMissingBlobsRequest{InstanceName: "main/ci", DigestFunction: repb.DigestFunction_SHA256, BlobDigests: []*repb.Digest{{Hash: other, SizeBytes: 1}}}),
		marshal(&repb.FindMissingBlobsRequest{InstanceName: "x", DigestFunction: repb.DigestFunction_SHA1}),
		digest(hash(other), size(1<<63)),        // a negative size, as a client may send
		digest(hash(other), size(0)),            // a zero size written out
		digest(size(7), hash(fuzzHash)),         // fields out of order
		digest(hash(fuzzHash), hash(other)),     // a later hash wins
		digest(size(1)),                         // no hash
		digest(hash(strings.ToUpper(fuzzHash))), // ASCII, not lower-case: decoded, refused later
		digest(hash(fuzzHash[:63])),
		digest(hash(strings.Repeat("\xff", 64))), // not UTF-8: proto refuses it
		append(digest(hash(fuzzHash)), protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1)...), // unknown field
		append(digest(hash(fuzzHash), size(3)), 0x12, 0x40),                                                             // truncated
		append(protowire.AppendString(protowire.AppendTag(nil, fmInstanceName, protowire.BytesType), "a\xffb"), digest(hash(fuzzHash))...),
	}
}

func TestDecodeFindMissingMatchesProto(t *testing.T) {
	fast := 0
	for _, b := range findMissingSeeds() {
		if checkDecodeFindMissing(t, b) {
			fast++
		}
	}
	if fast < 7 {
		t.Errorf("only %d of the seeds took the fast path", fast)
	}
}

// FuzzDecodeFindMissing: whatever the bytes, the fast decoder either
// declines them or decodes exactly what proto.Unmarshal decodes.
func FuzzDecodeFindMissing(f *testing.F) {
	for _, b := range findMissingSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeFindMissing(t, b) })
}

// checkDecodeFindMissing reports whether b took the fast path, failing t
// when that path disagrees with proto.Unmarshal.
func checkDecodeFindMissing(t *testing.T, b []byte) bool {
	t.Helper()
	var got repb.FindMissingBlobsRequest
	if !decodeFindMissing(b, &got) {
		return false
	}
	var want repb.FindMissingBlobsRequest
	if err := proto.Unmarshal(b, &want); err != nil {
		t.Fatalf("%x: decoded fast, but proto.Unmarshal refuses it: %v", b, err)
	}
	if !proto.Equal(&got, &want) {
		t.Fatalf("%x: decoded fast as %v, proto.Unmarshal says %v", b, &got, &want)
	}
	return true
}

// The response encoder writes exactly proto.Marshal's bytes, and leaves
// what it does not handle to proto.
func TestEncodeFindMissingMatchesProto(t *testing.T) {
	other := strings.Repeat("ab", 32)
	withUnknown := &repb.Digest{Hash: other}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1))
	many := &repb.FindMissingBlobsResponse{}
	for i := range 2000 { // past gRPC's buffer pooling threshold
		many.MissingBlobDigests = append(many.MissingBlobDigests, &repb.Digest{Hash: other, SizeBytes: int64(i) << (i % 50)})
	}
	for name, tc := range map[string]struct {
		resp *repb.FindMissingBlobsResponse
		fast bool
	}{
		"empty":      {&repb.FindMissingBlobsResponse{}, true},
		"digests":    {&repb.FindMissingBlobsResponse{MissingBlobDigests: []*repb.Digest{{Hash: fuzzHash}, {Hash: other, SizeBytes: 1 << 40}, {Hash: other, SizeBytes: -1}}}, true},
		"odd digest": {&repb.FindMissingBlobsResponse{MissingBlobDigests: []*repb.Digest{{}, {Hash: strings.Repeat("x", 300)}}}, true},
		"many":       {many, true},
		"unknown":    {&repb.FindMissingBlobsResponse{MissingBlobDigests: []*repb.Digest{withUnknown}}, false},
	} {
		data, ok := encodeFindMissing(tc.resp)
		if ok != tc.fast {
			t.Errorf("%s: fast path %v, want %v", name, ok, tc.fast)
		}
		if !ok {
			continue
		}
		want, err := proto.Marshal(tc.resp)
		if err != nil {
			t.Fatal(err)
		}
		if got := data.Materialize(); !bytes.Equal(got, want) {
			t.Errorf("%s: encoded %d bytes unlike proto.Marshal's %d", name, len(got), len(want))
		}
		data.Free()
	}
}
