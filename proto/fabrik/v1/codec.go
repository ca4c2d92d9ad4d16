package fabrikv1

import (
	"encoding/binary"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Codec is gRPC's proto codec with a fast path for the messages that carry
// content: a GetResponse or PutRequest holding a chunk. Those are framed by
// hand (one tag byte, a varint length, the bytes: exactly what proto
// writes, so either end may use the plain codec) and copied once, into
// buffers that are recycled without being cleared. gRPC's proto codec
// would clear a pooled buffer and copy into it to send, and on receipt copy
// the frames into a cleared buffer, then into a newly allocated slice: for
// a 256 MiB artifact that is most of a regional's CPU after the network
// itself. Every other message, and any chunk message with more than its
// chunk in it, goes through the proto codec.
//
// Its name is proto's, so the content-subtype on the wire does not change;
// it is set per server (grpc.ForceServerCodecV2) and per client
// connection (grpc.ForceCodecV2), never registered globally.
//
// A chunk received through the fast path lives in a recycled buffer: the
// receiver hands it back with ReleaseChunk once it has used the bytes (a
// chunk that is never released is collected as garbage like any slice).
var Codec encoding.CodecV2 = chunkCodec{}

type chunkCodec struct{}

// chunkTag is field 2 (chunk, in both messages) with wire type 2 (bytes).
const chunkTag = 2<<3 | 2

// fastMin is the smallest chunk worth the fast path; below it gRPC's own
// codec does not pool either.
const fastMin = 1 << 10

func (chunkCodec) Name() string { return proto.Name }

func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2(proto.Name) }

func (chunkCodec) Marshal(v any) (mem.BufferSlice, error) {
	var chunk []byte
	switch m := v.(type) {
	case *GetResponse:
		if c, ok := m.GetPayload().(*GetResponse_Chunk); ok {
			chunk = c.Chunk
		}
	case *PutRequest:
		if c, ok := m.GetPayload().(*PutRequest_Chunk); ok {
			chunk = c.Chunk
		}
	}
	if len(chunk) < fastMin {
		return protoCodec().Marshal(v)
	}
	hdr := binary.AppendUvarint([]byte{chunkTag}, uint64(len(chunk)))
	buf := chunkBufs.Get(len(chunk))
	copy(*buf, chunk)
	return mem.BufferSlice{mem.SliceBuffer(hdr), mem.NewBuffer(buf, chunkBufs)}, nil
}

func (chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *GetResponse:
		if b, ok := unmarshalChunk(data); ok {
			m.Reset()
			m.Payload = &GetResponse_Chunk{Chunk: b}
			return nil
		}
	case *PutRequest:
		if b, ok := unmarshalChunk(data); ok {
			m.Reset()
			m.Payload = &PutRequest_Chunk{Chunk: b}
			return nil
		}
	}
	return protoCodec().Unmarshal(data, v)
}

// unmarshalChunk reads a message that is one chunk field and nothing else
// into a recycled buffer; anything else is left to proto (ok false).
func unmarshalChunk(data mem.BufferSlice) ([]byte, bool) {
	total := data.Len()
	if total < fastMin {
		return nil, false
	}
	var head [1 + binary.MaxVarintLen64]byte
	h := 0
	for _, b := range data {
		h += copy(head[h:], b.ReadOnlyData())
		if h == len(head) {
			break
		}
	}
	if head[0] != chunkTag {
		return nil, false
	}
	n, k := binary.Uvarint(head[1:h])
	if k <= 0 || uint64(total-1-k) != n {
		return nil, false
	}
	buf := chunkBufs.Get(int(n))
	skip, out := 1+k, *buf
	for _, b := range data {
		d := b.ReadOnlyData()
		if skip >= len(d) {
			skip -= len(d)
			continue
		}
		out = out[copy(out, d[skip:]):]
		skip = 0
	}
	return *buf, true
}

// ReleaseChunk hands back a chunk's buffer once its bytes are used. Only
// the receiver of a message may release its chunk, and only once.
func ReleaseChunk(b []byte) {
	if cap(b) >= ChunkSize {
		chunkBufs.Put(&b)
	}
}

// chunkBufs is a mem.BufferPool of chunk buffers that are never cleared:
// every byte handed out is overwritten before anyone reads it.
var chunkBufs = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) Get(n int) *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, max(n, ChunkSize))
	return &b
}

func (bp *bufferPool) Put(b *[]byte) {
	if cap(*b) < ChunkSize || cap(*b) > MaxChunkSize {
		return // odd sizes are left to the collector
	}
	bp.p.Put(b)
}

var _ mem.BufferPool = (*bufferPool)(nil)
