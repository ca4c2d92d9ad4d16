package webdav

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/tuist/fabrik-node/adapters"
	"github.com/tuist/fabrik-node/messages"
)

// Collections. adapters.Cache can look a key up but not list keys, so each
// collection is an entry of its own in the webdav namespace: the key is the
// collection's path and a slash, the body its listing, one member per line,
// collections with a trailing slash:
//
//	sccache/a/b/c/  ->  "f00d\nbeef\n"
//	sccache/        ->  "a/\n"
//
// A PUT adds the file's name to its parent's listing, creating missing
// ancestors as it goes (implicit collections: a client that PUTs without
// MKCOL still sees its directories). MKCOL writes an empty listing. DELETE
// takes the name out. A listing is advisory: PROPFIND Depth 1 stats every
// member and leaves out those the cache no longer holds (evicted), and a
// listing that was itself evicted reappears with the next write below it.
// Two edges writing into one directory may each overwrite the other's
// listing upstream (last writer wins); the files are unaffected.

// maxMembers bounds one collection's listing, so a huge flat directory
// cannot make every write rewrite megabytes; past it, new names are stored
// and readable but not listed.
const maxMembers = 20000

// maxListingBytes bounds the listing read back from the cache.
const maxListingBytes = maxMembers * (maxPathLen + 2)

// collectionLocks serialises the read-modify-write of one collection's
// listing within this node (striped: a fixed set of mutexes, no growth).
type collectionLocks [64]sync.Mutex

func (l *collectionLocks) lock(p davPath) func() {
	h := fnv.New32a()
	h.Write([]byte(p))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

// listing is one collection's members, sorted; collections end with "/".
type listing []string

func parseListing(b []byte) listing {
	var l listing
	for _, line := range strings.Split(string(b), "\n") {
		if line != "" {
			l = append(l, line)
		}
	}
	slices.Sort(l)
	return slices.Compact(l)
}

func (l listing) encode() []byte {
	var b bytes.Buffer
	for _, m := range l {
		b.WriteString(m)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func (l listing) has(member string) bool {
	_, ok := slices.BinarySearch(l, member)
	return ok
}

// readListing returns the listing of the collection at p and whether the
// collection exists. The root always exists.
func (a *Adapter) readListing(ctx context.Context, p davPath) (listing, *messages.Meta, bool, error) {
	res, err := a.cache.Get(ctx, a.ref(p.collectionKey()))
	if err != nil {
		return nil, nil, false, err
	}
	if !res.Found {
		return nil, nil, p.isRoot(), nil
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxListingBytes))
	if err != nil {
		return nil, nil, false, fmt.Errorf("read listing of %q: %w", p, err)
	}
	return parseListing(b), &res.Meta, true, nil
}

// writeListing stores l as the listing of the collection at p, through the
// shared write path like any upload.
func (a *Adapter) writeListing(ctx context.Context, p davPath, l listing) error {
	body := l.encode()
	res := adapters.Store(ctx, a.cache, a.ref(p.collectionKey()), messages.Meta{BuildSystem: buildSystem}, adapters.Upload{
		Body: bytes.NewReader(body), Length: int64(len(body)),
	})
	if res.Outcome != adapters.Stored {
		return fmt.Errorf("store listing of %q: %s: %w", p, res.Outcome, res.Err)
	}
	return nil
}

// addMember lists member in the collection at p (creating the collection's
// listing if there was none). It reports whether the collection existed.
func (a *Adapter) addMember(ctx context.Context, p davPath, member string) (existed bool, err error) {
	defer a.locks.lock(p)()
	l, _, existed, err := a.readListing(ctx, p)
	if err != nil {
		return false, err
	}
	if l.has(member) {
		return existed, nil
	}
	if len(l) >= maxMembers {
		a.log.Warn("webdav: collection listing full; new member stored but not listed", "collection", string(p), "member", member, "max", maxMembers)
		return existed, nil
	}
	l = append(l, member)
	slices.Sort(l)
	return existed, a.writeListing(ctx, p, l)
}

// link lists p (a file, or a collection when collection is set) in its
// parent, and each missing ancestor in its own parent, up to the first
// collection that already existed.
func (a *Adapter) link(ctx context.Context, p davPath, collection bool) error {
	for !p.isRoot() {
		member := p.name()
		if collection {
			member += "/"
		}
		parent := p.parent()
		existed, err := a.addMember(ctx, parent, member)
		if err != nil || existed {
			return err
		}
		p, collection = parent, true
	}
	return nil
}

// unlink takes p out of its parent's listing.
func (a *Adapter) unlink(ctx context.Context, p davPath, collection bool) error {
	if p.isRoot() {
		return nil
	}
	member := p.name()
	if collection {
		member += "/"
	}
	parent := p.parent()
	defer a.locks.lock(parent)()
	l, _, existed, err := a.readListing(ctx, parent)
	if err != nil || !existed || !l.has(member) {
		return err
	}
	l = slices.DeleteFunc(l, func(m string) bool { return m == member })
	return a.writeListing(ctx, parent, l)
}
