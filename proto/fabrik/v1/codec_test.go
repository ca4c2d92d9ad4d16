package fabrikv1

import (
	"bytes"
	"crypto/rand"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// split cuts b into frames of n bytes, as the transport delivers a message.
func split(b []byte, n int) mem.BufferSlice {
	var s mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		s = append(s, mem.SliceBuffer(bytes.Clone(b[:k])))
		b = b[k:]
	}
	return s
}

// The fast path writes exactly proto's bytes and reads back what proto
// wrote, for every chunk size, in whatever frames it arrives.
func TestCodecMatchesProto(t *testing.T) {
	for _, n := range []int{0, 1, fastMin - 1, fastMin, 16<<10 + 3, ChunkSize, MaxChunkSize} {
		chunk := make([]byte, n)
		rand.Read(chunk)
		for _, msg := range []proto.Message{
			&GetResponse{Payload: &GetResponse_Chunk{Chunk: chunk}},
			&PutRequest{Payload: &PutRequest_Chunk{Chunk: chunk}},
		} {
			want, err := proto.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Codec.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Materialize(), want) {
				t.Fatalf("%T with %d bytes: the codec's bytes differ from proto's", msg, n)
			}
			got.Free()
			for _, frame := range []int{16 << 10, 7, 1 << 20} {
				back := msg.ProtoReflect().New().Interface()
				if err := Codec.Unmarshal(split(want, frame), back); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(back, msg) {
					t.Fatalf("%T with %d bytes in %d-byte frames: read back differs", msg, n, frame)
				}
			}
		}
	}
}

// Messages other than a lone chunk go through proto: metadata, headers,
// and a chunk followed by a field this version does not know.
func TestCodecLeavesOtherMessagesToProto(t *testing.T) {
	chunk := make([]byte, 64<<10)
	rand.Read(chunk)
	for _, msg := range []proto.Message{
		&GetResponse{Payload: &GetResponse_Meta{Meta: &Meta{Hash: "h", Size: 3}}},
		&PutRequest{Payload: &PutRequest_Header{Header: &PutHeader{Hash: "h", Size: 3}}},
		&GetRequest{Ref: &Ref{Namespace: "ns", Key: "k"}},
	} {
		b, err := Codec.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		back := msg.ProtoReflect().New().Interface()
		if err := Codec.Unmarshal(b, back); err != nil || !proto.Equal(back, msg) {
			t.Fatalf("%T: %v, read back %v", msg, err, back)
		}
	}
	wire, _ := proto.Marshal(&GetResponse{Payload: &GetResponse_Chunk{Chunk: chunk}})
	wire = protowire.AppendTag(wire, 99, protowire.VarintType)
	wire = protowire.AppendVarint(wire, 7)
	var back GetResponse
	if err := Codec.Unmarshal(split(wire, 16<<10), &back); err != nil || !bytes.Equal(back.GetChunk(), chunk) {
		t.Fatalf("chunk with an unknown field: %v, %d bytes", err, len(back.GetChunk()))
	}
	if len(back.ProtoReflect().GetUnknown()) == 0 {
		t.Fatal("the unknown field was dropped: the fast path took a message it must leave to proto")
	}
}

// A released chunk's buffer is handed out again, and what is handed out
// is never shorter than asked.
func TestChunkBuffersRecycle(t *testing.T) {
	b := chunkBufs.Get(ChunkSize)
	ReleaseChunk(*b)
	for _, n := range []int{10, ChunkSize, MaxChunkSize} {
		if got := chunkBufs.Get(n); len(*got) != n {
			t.Fatalf("Get(%d) = %d bytes", n, len(*got))
		}
	}
}
