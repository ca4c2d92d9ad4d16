package bazel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/tuist/fabrik-node/tier"
)

// treeCheckBytes is the largest output-directory Tree whose files
// GetActionResult checks one by one; larger trees are checked by their own
// digest only, to keep a cache hit cheap.
const treeCheckBytes = 4 << 20

// actionCacheServer serves ActionCache. Results are stored per instance
// under acRef, as the serialized ActionResult proto.
type actionCacheServer struct {
	repb.UnimplementedActionCacheServer
	srv *Server
}

func (a *actionCacheServer) GetActionResult(ctx context.Context, req *repb.GetActionResultRequest) (*repb.ActionResult, error) {
	defer a.srv.observe("get_action_result", time.Now())
	if err := checkRequest(req.GetInstanceName(), req.GetDigestFunction()); err != nil {
		return nil, err
	}
	action, err := parseDigest(req.GetActionDigest())
	if err != nil {
		return nil, invalid("GetActionResult action digest: %v", err)
	}
	result, err := a.load(ctx, req.GetInstanceName(), action)
	if err == nil {
		err = a.srv.checkOutputs(ctx, result)
	}
	if errors.Is(err, tier.ErrNotFound) {
		a.srv.miss()
		return nil, status.Errorf(codes.NotFound, "action %s: %v", action, err)
	}
	if err != nil {
		return nil, a.srv.statusFor("get_action_result", err)
	}
	a.srv.hit()
	a.srv.inline(ctx, req, result)
	return result, nil
}

// load reads and parses the stored result of an action.
func (a *actionCacheServer) load(ctx context.Context, instance string, action digest) (*repb.ActionResult, error) {
	res, err := a.srv.cache.Get(ctx, acRef(instance, action))
	if err != nil {
		return nil, fmt.Errorf("get action result: %w", err)
	}
	if !res.Found {
		return nil, fmt.Errorf("no result stored: %w", tier.ErrNotFound)
	}
	defer res.Body.Close()
	if res.Meta.Size > maxProtoBlob {
		return nil, fmt.Errorf("stored action result is %d bytes: %w", res.Meta.Size, tier.ErrNotFound)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxProtoBlob))
	if err != nil {
		return nil, fmt.Errorf("read action result: %w", err)
	}
	result := &repb.ActionResult{}
	if err := proto.Unmarshal(b, result); err != nil {
		// An unreadable entry is a miss: Bazel re-runs the action and
		// overwrites it.
		a.srv.log.Warn("unreadable action result", "action", action.String(), "err", err)
		return nil, fmt.Errorf("stored action result does not parse: %w", tier.ErrNotFound)
	}
	return result, nil
}

// checkOutputs returns tier.ErrNotFound if any blob the result refers to is
// gone (evicted, or never uploaded). Answering such a result would make Bazel
// fail the build when it downloads outputs; a miss makes it re-run the action.
func (s *Server) checkOutputs(ctx context.Context, r *repb.ActionResult) error {
	refs, trees, err := referencedBlobs(r)
	if err != nil {
		return fmt.Errorf("stored result: %v: %w", err, tier.ErrNotFound)
	}
	for _, t := range trees {
		if t.size > treeCheckBytes {
			continue
		}
		files, err := s.treeFiles(ctx, t)
		if err != nil {
			return err
		}
		refs = append(refs, files...)
	}
	refs = dedupe(refs)
	missing, err := s.missing(ctx, refs)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("output blob %s (and %d more) no longer in the CAS: %w", refs[missing[0]], len(missing)-1, tier.ErrNotFound)
	}
	return nil
}

// referencedBlobs lists the digests of a result's outputs, with the output
// directories' Tree digests also returned on their own.
func referencedBlobs(r *repb.ActionResult) (all, trees []digest, err error) {
	add := func(what string, pd *repb.Digest) (digest, error) {
		d, err := parseDigest(pd)
		if err != nil {
			return d, fmt.Errorf("%s: %v", what, err)
		}
		all = append(all, d)
		return d, nil
	}
	for _, f := range r.GetOutputFiles() {
		if _, err := add("output file "+f.GetPath(), f.GetDigest()); err != nil {
			return nil, nil, err
		}
	}
	for _, od := range r.GetOutputDirectories() {
		d, err := add("output directory "+od.GetPath(), od.GetTreeDigest())
		if err != nil {
			return nil, nil, err
		}
		trees = append(trees, d)
	}
	for _, std := range []struct {
		name string
		d    *repb.Digest
	}{{"stdout", r.GetStdoutDigest()}, {"stderr", r.GetStderrDigest()}} {
		if std.d == nil {
			continue
		}
		if _, err := add(std.name, std.d); err != nil {
			return nil, nil, err
		}
	}
	return all, trees, nil
}

// treeFiles lists the file digests inside an output directory's Tree. A
// missing tree is a miss; checkOutputs reports it through the tree digest.
func (s *Server) treeFiles(ctx context.Context, t digest) ([]digest, error) {
	b, err := s.readBlob(ctx, t)
	if errors.Is(err, tier.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	tree := &repb.Tree{}
	if err := proto.Unmarshal(b, tree); err != nil {
		return nil, fmt.Errorf("output tree %s does not parse: %w", t, tier.ErrNotFound)
	}
	var out []digest
	for _, dir := range append([]*repb.Directory{tree.GetRoot()}, tree.GetChildren()...) {
		for _, f := range dir.GetFiles() {
			d, err := parseDigest(f.GetDigest())
			if err != nil {
				return nil, fmt.Errorf("output tree %s, file %q: %v: %w", t, f.GetName(), err, tier.ErrNotFound)
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func dedupe(ds []digest) []digest {
	seen := make(map[digest]bool, len(ds))
	out := ds[:0]
	for _, d := range ds {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// inline fills in the stdout, stderr and output file contents the client
// asked for (and only those), within what is left of replyLimit once the
// result itself is counted, so the reply never exceeds the client's message
// limit. Inlining is an optimisation: a blob that does not fit or cannot be
// read is left to the client to fetch by digest.
func (s *Server) inline(ctx context.Context, req *repb.GetActionResultRequest, r *repb.ActionResult) {
	budget := int64(replyLimit - proto.Size(r))
	read := func(pd *repb.Digest) []byte {
		d, err := parseDigest(pd)
		if err != nil || d.size+itemOverhead > budget || d.size > s.maxBatch {
			return nil
		}
		b, err := s.readBlob(ctx, d)
		if err != nil {
			return nil
		}
		budget -= d.size + itemOverhead
		return b
	}
	if req.GetInlineStdout() && r.GetStdoutDigest() != nil && len(r.StdoutRaw) == 0 {
		r.StdoutRaw = read(r.GetStdoutDigest())
	}
	if req.GetInlineStderr() && r.GetStderrDigest() != nil && len(r.StderrRaw) == 0 {
		r.StderrRaw = read(r.GetStderrDigest())
	}
	if len(req.GetInlineOutputFiles()) == 0 {
		return
	}
	want := make(map[string]bool, len(req.GetInlineOutputFiles()))
	for _, p := range req.GetInlineOutputFiles() {
		want[p] = true
	}
	for _, f := range r.GetOutputFiles() {
		if want[f.GetPath()] && len(f.Contents) == 0 {
			f.Contents = read(f.GetDigest())
		}
	}
}

// deinline moves data a client inlined into an ActionResult (stdout_raw,
// stderr_raw, output file contents) into the CAS and clears it from the
// result, so the stored result is small and every digest it names exists:
// a result pointing at blobs stored nowhere fails the next build's hit.
func (s *Server) deinline(ctx context.Context, r *repb.ActionResult) error {
	store := func(what string, raw []byte, pd *repb.Digest) (*repb.Digest, error) {
		sum := sha256.Sum256(raw)
		d := digest{hash: hex.EncodeToString(sum[:]), size: int64(len(raw))}
		if pd != nil && (pd.GetHash() != d.hash || pd.GetSizeBytes() != d.size) {
			return nil, invalid("UpdateActionResult: inlined %s does not match its digest %s/%d", what, pd.GetHash(), pd.GetSizeBytes())
		}
		if err := s.checkSize(d); err != nil {
			return nil, err
		}
		if err := s.storeBlob(ctx, d, bytes.NewReader(raw)); err != nil {
			return nil, fmt.Errorf("store inlined %s: %w", what, err)
		}
		return &repb.Digest{Hash: d.hash, SizeBytes: d.size}, nil
	}
	var err error
	if len(r.StdoutRaw) > 0 {
		if r.StdoutDigest, err = store("stdout", r.StdoutRaw, r.StdoutDigest); err != nil {
			return err
		}
		r.StdoutRaw = nil
	}
	if len(r.StderrRaw) > 0 {
		if r.StderrDigest, err = store("stderr", r.StderrRaw, r.StderrDigest); err != nil {
			return err
		}
		r.StderrRaw = nil
	}
	for _, f := range r.GetOutputFiles() {
		if len(f.Contents) > 0 {
			if f.Digest, err = store("output file "+f.GetPath(), f.Contents, f.Digest); err != nil {
				return err
			}
			f.Contents = nil
		}
	}
	return nil
}

func (a *actionCacheServer) UpdateActionResult(ctx context.Context, req *repb.UpdateActionResultRequest) (*repb.ActionResult, error) {
	defer a.srv.observe("update_action_result", time.Now())
	if err := checkRequest(req.GetInstanceName(), req.GetDigestFunction()); err != nil {
		return nil, err
	}
	action, err := parseDigest(req.GetActionDigest())
	if err != nil {
		return nil, invalid("UpdateActionResult action digest: %v", err)
	}
	result := req.GetActionResult()
	if result == nil {
		return nil, invalid("UpdateActionResult: action_result is missing")
	}
	if err := checkOutputPaths(result); err != nil {
		return nil, invalid("UpdateActionResult: %v", err)
	}
	// The client's message is ours to change: the reply is the stored form.
	if err := a.srv.deinline(ctx, result); err != nil {
		return nil, a.srv.statusFor("update_action_result", err)
	}
	if _, _, err := referencedBlobs(result); err != nil {
		return nil, invalid("UpdateActionResult: %v", err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(result)
	if err != nil {
		return nil, a.srv.statusFor("update_action_result", fmt.Errorf("marshal action result: %w", err))
	}
	if err := a.srv.checkSize(digest{hash: "action result", size: int64(len(b))}); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	st, err := a.srv.cache.Stage(hash, int64(len(b)))
	if err != nil {
		return nil, a.srv.statusFor("update_action_result", fmt.Errorf("stage action result: %w", err))
	}
	if _, err := st.Write(b); err != nil {
		st.Discard()
		return nil, a.srv.statusFor("update_action_result", err)
	}
	if err := st.Seal(); err != nil {
		return nil, a.srv.statusFor("update_action_result", err)
	}
	if err := a.srv.commit(ctx, acRef(req.GetInstanceName(), action), st); err != nil {
		return nil, a.srv.statusFor("update_action_result", err)
	}
	a.srv.uploaded(int64(len(b)))
	return result, nil
}
