package fabrikv1

// Chunk sizes shared by both ends of the protocol. 256 KiB amortises the
// per-message cost (framing, a syscall, a flow-control update) while keeping
// a stream's memory small; 1 MiB is the most a peer may send in one message,
// well under gRPC's default 4 MiB receive limit.
const (
	// ChunkSize is the size of the chunks this implementation sends.
	ChunkSize = 256 << 10
	// MaxChunkSize is the largest chunk a receiver accepts.
	MaxChunkSize = 1 << 20
)
