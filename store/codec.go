package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tuist/fabrik-node/internal/hexhash"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
)

// Badger key prefixes. Every key the store writes starts with one of these,
// so other node state (the upload queue's "q/") can share the database.
const (
	prefixKey  = "k/" // k/<namespace>\x00<key>      -> keyValue
	prefixBlob = "b/" // b/<hash hex>                -> blobValue
	prefixRef  = "r/" // r/<hash hex>/<namespace>\x00<key> -> empty
	prefixData = "d/" // d/<hash hex>                -> the body of an inline blob
)

// keySep separates namespace from key inside index keys. Namespaces contain
// "/" themselves ("turbo/<team>", "bazel-ac/<instance>"), so "/" would make
// ("a/b","c") and ("a","b/c") collide; NUL cannot appear in either.
const keySep = "\x00"

type hashKey [32]byte

// parseHash decodes a lower-case hex SHA-256. It runs for every ref a read
// or an existence check names (thousands per FindMissingBlobs), so it
// allocates nothing unless it fails.
func parseHash(s string) (hashKey, error) {
	var h hashKey
	if !hexhash.Decode((*[32]byte)(&h), s) {
		return hashKey{}, fmt.Errorf("%w: %q is not a lower-case hex SHA-256", tier.ErrInvalid, s)
	}
	return h, nil
}

func (h hashKey) String() string { return hex.EncodeToString(h[:]) }

func refName(ref messages.Ref) ([]byte, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	return []byte(ref.Namespace + keySep + ref.Key), nil
}

// checkRef reports whether ref can name an entry of the key index.
func checkRef(ref messages.Ref) error {
	if ref.Namespace == "" || ref.Key == "" {
		return fmt.Errorf("%w: empty namespace or key in %q", tier.ErrInvalid, ref.String())
	}
	if strings.Contains(ref.Namespace, keySep) || strings.Contains(ref.Key, keySep) {
		return fmt.Errorf("%w: NUL in %q", tier.ErrInvalid, ref.String())
	}
	return nil
}

func keyIndexKey(name []byte) []byte { return append([]byte(prefixKey), name...) }

func blobIndexKey(h hashKey) []byte { return []byte(prefixBlob + h.String()) }

func dataKey(h hashKey) []byte { return []byte(prefixData + h.String()) }

func refPrefix(h hashKey) []byte { return []byte(prefixRef + h.String() + "/") }

func refIndexKey(h hashKey, name []byte) []byte { return append(refPrefix(h), name...) }

// blobValue is the b/ entry. It is a few dozen bytes, well under the Badger
// ValueThreshold, so it lives inline in the LSM tree: the rebuild's
// non-prefetching iteration reads it from the same block as the key, with no
// value-log lookup.
type blobValue struct {
	size        int64
	created     int64 // unix nanoseconds
	lastAccess  int64
	accessCount uint64
	cas         bool // stored through the CAS namespace: keeps the blob alive without key refs
	inline      bool // the body is the d/ entry, not a file under blobs/
	buildSystem string
}

const blobValueVersion = 1

func (v blobValue) encode() []byte {
	b := make([]byte, 0, 48+len(v.buildSystem))
	b = append(b, blobValueVersion)
	b = binary.AppendVarint(b, v.size)
	b = binary.AppendVarint(b, v.created)
	b = binary.AppendVarint(b, v.lastAccess)
	b = binary.AppendUvarint(b, v.accessCount)
	flags := byte(0)
	if v.cas {
		flags |= 1
	}
	if v.inline {
		flags |= 2
	}
	b = append(b, flags)
	return appendString(b, v.buildSystem)
}

func decodeBlobValue(b []byte) (blobValue, error) {
	var v blobValue
	d := decoder{b: b}
	if d.byte() != blobValueVersion {
		return v, errors.New("unknown blob entry version")
	}
	v.size = d.varint()
	v.created = d.varint()
	v.lastAccess = d.varint()
	v.accessCount = d.uvarint()
	flags := d.byte()
	v.cas, v.inline = flags&1 != 0, flags&2 != 0
	v.buildSystem = d.string()
	return v, d.err
}

// keyValue is the k/ entry: what a tool key resolves to.
type keyValue struct {
	hash        hashKey
	size        int64
	created     int64
	buildSystem string
	attrs       map[string]string
}

const keyValueVersion = 1

func (v keyValue) encode() []byte {
	b := make([]byte, 0, 64+len(v.buildSystem))
	b = append(b, keyValueVersion)
	b = append(b, v.hash[:]...)
	b = binary.AppendVarint(b, v.size)
	b = binary.AppendVarint(b, v.created)
	b = appendString(b, v.buildSystem)
	keys := make([]string, 0, len(v.attrs))
	for k := range v.attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic bytes for identical metadata
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, v.attrs[k])
	}
	return b
}

func decodeKeyValue(b []byte) (keyValue, error) {
	var v keyValue
	d := decoder{b: b}
	if d.byte() != keyValueVersion {
		return v, errors.New("unknown key entry version")
	}
	copy(v.hash[:], d.bytes(32))
	v.size = d.varint()
	v.created = d.varint()
	v.buildSystem = d.string()
	n := d.uvarint()
	if n > 0 && d.err == nil {
		v.attrs = make(map[string]string, min(n, 64))
		for i := uint64(0); i < n && d.err == nil; i++ {
			k := d.string()
			v.attrs[k] = d.string()
		}
	}
	return v, d.err
}

// keyValueHash reads only the blob hash of an encoded keyValue, what an
// existence check needs, without decoding (and allocating) the rest.
func keyValueHash(b []byte, h *hashKey) error {
	if len(b) < 1+len(h) || b[0] != keyValueVersion {
		return errors.New("unknown or truncated key entry")
	}
	copy(h[:], b[1:])
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads a value sequentially and remembers the first error, so
// decode functions stay linear.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated index value")

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.err = errShort
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) byte() byte {
	b := d.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	return string(d.bytes(int(n)))
}
