package bazel

import (
	"fmt"
	"path"
	"strings"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// replyLimit bounds every reply this adapter builds from blobs (inlined
// action results, batch reads): gRPC clients receive at most 4 MiB per
// message by default (Bazel's Java client included), and a reply over it
// fails the client with RESOURCE_EXHAUSTED. The margin covers the reply's
// own framing beyond what is counted per item.
const replyLimit = 4<<20 - 4<<10

// itemOverhead is what one repeated entry adds to a reply besides its data:
// field tag and length, the digest (64 hex characters and a size), a status.
// Counted per blob so that thousands of small blobs cannot overflow a reply
// whose data alone is under the limit.
const itemOverhead = 128

// tooLarge refuses a blob over the node's max_artifact_size.
func (s *Server) checkSize(d digest) error {
	if s.maxArtifact > 0 && d.size > s.maxArtifact {
		return status.Errorf(codes.InvalidArgument, "blob %s of %d bytes exceeds this cache's max_artifact_size of %d bytes", d, d.size, s.maxArtifact)
	}
	return nil
}

// checkOutputPath refuses what an ActionResult's output path must not be
// (REAPI: relative to the working directory, no leading or trailing slash):
// empty, absolute, or with an empty, "." or ".." component, any of which
// would make a client write outside its output tree.
func checkOutputPath(kind, p string) error {
	if p == "" {
		return fmt.Errorf("%s path is empty", kind)
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("%s path %q must be relative, with no leading or trailing slash", kind, p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%s path %q has a %q component", kind, p, c)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("%s path %q is not clean", kind, p)
	}
	return nil
}

// checkOutputPaths validates every output path of r.
func checkOutputPaths(r *repb.ActionResult) error {
	for _, f := range r.GetOutputFiles() {
		if err := checkOutputPath("output file", f.GetPath()); err != nil {
			return err
		}
	}
	for _, d := range r.GetOutputDirectories() {
		if err := checkOutputPath("output directory", d.GetPath()); err != nil {
			return err
		}
	}
	// The per-kind symlink lists are deprecated in REAPI 2.1 but Bazel 4
	// still sends them, so their paths are checked too.
	//lint:ignore SA1019 older clients still fill these fields
	for _, group := range [][]*repb.OutputSymlink{r.GetOutputFileSymlinks(), r.GetOutputDirectorySymlinks(), r.GetOutputSymlinks()} {
		for _, l := range group {
			if err := checkOutputPath("output symlink", l.GetPath()); err != nil {
				return err
			}
		}
	}
	return nil
}
