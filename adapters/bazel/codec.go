package bazel

import (
	"encoding/binary"
	"sync"
	"unicode/utf8"
	"unsafe"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec this one wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tuist/fabrik-node/internal/hexhash"
)

// ServerOptions are the options of a gRPC server the adapter is registered
// on (Register): its codec, which decodes FindMissingBlobs requests and
// encodes their answers without the generic protobuf machinery (see
// decodeFindMissing, encodeFindMissing).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(codec{encoding.GetCodecV2("proto")})}
}

// codec is gRPC's protobuf codec, except for FindMissingBlobs requests and
// responses: Bazel sends one per action with every input digest, and
// generic decoding (two allocations, UTF-8 validation and reflection per
// digest) was the largest cost of the call once the lookups took one pass
// over the index.
type codec struct{ encoding.CodecV2 }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	req, ok := v.(*repb.FindMissingBlobsRequest)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(scratch)
	defer buf.Free()
	if decodeFindMissing(buf.ReadOnlyData(), req) {
		return nil
	}
	return proto.Unmarshal(buf.ReadOnlyData(), req)
}

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if resp, ok := v.(*repb.FindMissingBlobsResponse); ok {
		if data, ok := encodeFindMissing(resp); ok {
			return data, nil
		}
	}
	return c.CodecV2.Marshal(v)
}

// Wire tags (field number and type in one byte) of FindMissingBlobsRequest,
// FindMissingBlobsResponse and Digest (remote_execution.proto).
const (
	tagInstanceName   = 1<<3 | byte(protowire.BytesType)  // FindMissingBlobsRequest.instance_name
	tagBlobDigests    = 2<<3 | byte(protowire.BytesType)  // FindMissingBlobsRequest.blob_digests
	tagDigestFunction = 3<<3 | byte(protowire.VarintType) // FindMissingBlobsRequest.digest_function
	tagMissing        = 2<<3 | byte(protowire.BytesType)  // FindMissingBlobsResponse.missing_blob_digests
	tagHash           = 1<<3 | byte(protowire.BytesType)  // Digest.hash
	tagSize           = 2<<3 | byte(protowire.VarintType) // Digest.size_bytes
)

// hashLen is the length of a SHA-256 hash in hex, the only hash this
// adapter accepts (checkHash).
const hashLen = hexhash.Len

// minDigestWire is the fewest bytes a digest decodeFindMissing accepts
// takes in a request: its tag and length, then the hash's.
const minDigestWire = 2 + 2 + hashLen

// decodeFindMissing decodes b into req, a new message, when b is a
// FindMissingBlobsRequest as protobuf encoders write it: only the fields
// the message defines, and each digest as its hash (hashLen ASCII bytes)
// then its size when not 0, the canonical order and form. It allocates four
// times whatever the number of digests (the digests in one slice, their
// pointers, their hashes in one string, the instance name), and reports
// false for anything else, which the caller then decodes with
// proto.Unmarshal: an unusual request is decoded, and refused, exactly as
// before. Every request it accepts is one proto.Unmarshal decodes the same
// way (ASCII is valid UTF-8; a later instance name or digest function wins),
// which TestDecodeFindMissingMatchesProto and FuzzDecodeFindMissing check.
func decodeFindMissing(b []byte, req *repb.FindMissingBlobsRequest) bool {
	most := len(b) / minDigestWire
	digests := make([]repb.Digest, most)
	ptrs := make([]*repb.Digest, 0, most)
	hashes := make([]byte, most*hashLen)
	// The hashes are never written again once copied: one string over all
	// of them, sliced per digest, instead of a string each.
	var all string
	if most > 0 {
		all = unsafe.String(&hashes[0], len(hashes))
	}
	var instance []byte
	fn := repb.DigestFunction_UNKNOWN
	for len(b) > 0 {
		switch b[0] {
		case tagBlobDigests:
			// A digest of hashLen characters is under 128 bytes: one
			// length byte.
			if len(b) < 2 || b[1] >= 0x80 || int(b[1]) > len(b)-2 {
				return false
			}
			v := b[2 : 2+int(b[1])]
			b = b[2+int(b[1]):]
			if len(v) < 2+hashLen || v[0] != tagHash || v[1] != hashLen || !ascii(v[2:2+hashLen]) {
				return false
			}
			var size uint64
			if rest := v[2+hashLen:]; len(rest) > 0 {
				n := 0
				if rest[0] == tagSize {
					size, n = protowire.ConsumeVarint(rest[1:])
				}
				if n <= 0 || n != len(rest)-1 {
					return false
				}
			}
			i := len(ptrs)
			copy(hashes[i*hashLen:], v[2:2+hashLen])
			d := &digests[i]
			d.Hash, d.SizeBytes = all[i*hashLen:(i+1)*hashLen], int64(size)
			ptrs = append(ptrs, d)
		case tagInstanceName:
			v, n := protowire.ConsumeBytes(b[1:])
			if n < 0 || !utf8.Valid(v) {
				return false
			}
			b, instance = b[1+n:], v
		case tagDigestFunction:
			v, n := protowire.ConsumeVarint(b[1:])
			if n < 0 {
				return false
			}
			b, fn = b[1+n:], repb.DigestFunction_Value(int32(v))
		default:
			return false
		}
	}
	req.InstanceName = string(instance)
	req.BlobDigests = ptrs
	req.DigestFunction = fn
	return true
}

// ascii reports whether b holds only bytes below 0x80, 8 at a time.
func ascii(b []byte) bool {
	var or uint64
	for len(b) >= 8 {
		or |= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		or |= uint64(c)
	}
	return or&0x8080808080808080 == 0
}

// encodeFindMissing encodes resp as proto.Marshal does (the same bytes,
// TestEncodeFindMissingMatchesProto), without its per-message bookkeeping,
// into a buffer of scratch. It reports false for a message with unknown
// fields or a nil digest, left to proto.
func encodeFindMissing(resp *repb.FindMissingBlobsResponse) (mem.BufferSlice, bool) {
	if len(resp.ProtoReflect().GetUnknown()) > 0 {
		return nil, false
	}
	size := 0
	for _, d := range resp.MissingBlobDigests {
		if d == nil || len(d.ProtoReflect().GetUnknown()) > 0 {
			return nil, false
		}
		n := digestWire(d)
		size += 1 + protowire.SizeVarint(uint64(n)) + n
	}
	buf := scratch.Get(size)
	b := (*buf)[:0]
	for _, d := range resp.MissingBlobDigests {
		b = append(b, tagMissing)
		b = protowire.AppendVarint(b, uint64(digestWire(d)))
		if d.Hash != "" {
			b = append(b, tagHash)
			b = protowire.AppendString(b, d.Hash)
		}
		if d.SizeBytes != 0 {
			b = append(b, tagSize)
			b = protowire.AppendVarint(b, uint64(d.SizeBytes))
		}
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, scratch)}, true
}

// scratch holds the buffers FindMissingBlobs messages are read into and
// written to. gRPC's default pool zeroes every buffer it hands out, and
// rounds a message of 32 KiB to 1 MiB (1,000 digests: a 70 KB request and
// a 35 KB answer) up to a 1 MiB buffer, so two 1 MiB clears per call took a
// fifth of the call's CPU. Nothing here needs zeroing: the request is
// copied over the whole buffer and the answer written over it before
// either is read.
var scratch = &dirtyPool{}

// maxScratch bounds the buffers scratch keeps (a 64 MiB request could
// otherwise pin that much).
const maxScratch = 4 << 20

// dirtyPool is a mem.BufferPool that does not clear what it hands out.
type dirtyPool struct{ p sync.Pool }

func (d *dirtyPool) Get(size int) *[]byte {
	if b, ok := d.p.Get().(*[]byte); ok && cap(*b) >= size {
		*b = (*b)[:size]
		return b
	}
	b := make([]byte, size)
	return &b
}

func (d *dirtyPool) Put(b *[]byte) {
	if cap(*b) <= maxScratch {
		d.p.Put(b)
	}
}

// digestWire is the encoded length of d's fields.
func digestWire(d *repb.Digest) int {
	n := 0
	if d.Hash != "" {
		n += 1 + protowire.SizeBytes(len(d.Hash))
	}
	if d.SizeBytes != 0 {
		n += 1 + protowire.SizeVarint(uint64(d.SizeBytes))
	}
	return n
}
