package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/e2e/harness"
)

// layerTar writes a tarball layer holding files name -> content.
func layerTar(t *testing.T, dir, name string, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), ModTime: time.Unix(1, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(c))
	}
	tw.Close()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tool runs a registry client and fails the test when it fails.
func tool(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	out, err := harness.Run(t, t.TempDir(), env, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// pushImage builds and pushes a two-layer image with crane.
func pushImage(t *testing.T, crane, ref, build string, env ...string) {
	t.Helper()
	dir := t.TempDir()
	l1 := layerTar(t, dir, "l1.tar", map[string]string{"app/one.txt": "first layer " + ref + " " + build})
	l2 := layerTar(t, dir, "l2.tar", map[string]string{"app/two.txt": strings.Repeat("second layer ", 50_000)})
	tool(t, env, crane, "append", "--insecure", "-f", l1, "-f", l2, "-t", ref)
}

// bigManifest grows ref's manifest past 64 KiB with an annotation, as a
// BuildKit cache manifest with hundreds of layers is: an edge reading it
// through its upstream then keeps a local copy of the tag (smaller bodies
// are sent without reading to EOF, which is what completes a write-back).
func bigManifest(t *testing.T, crane, ref string) {
	t.Helper()
	tool(t, nil, crane, "mutate", "--insecure", "-a", "org.example.pad="+strings.Repeat("x", 70_000), "-t", ref, ref)
}

// crane pushes an image to edge A; edge B, sharing A's regional, pulls it
// and copies it between the two; every copy has the same digest and files.
func TestOCICraneTwoEdges(t *testing.T) {
	t.Parallel()
	crane := harness.RequireTool(t, "crane")
	regional := harness.StartNode(t, []string{"--role", "regional"}, nil)
	upstream := harness.NodeOptions{ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\n", "grpc://"+regional.FabrikAddr)}
	a := harness.StartNodeWith(t, upstream)
	b := harness.StartNodeWith(t, upstream)

	ref := a.HTTPAddr + "/team/app:v1"
	pushImage(t, crane, ref, "build 1")
	bigManifest(t, crane, ref)
	want := tool(t, nil, crane, "digest", "--insecure", ref)
	if got := tool(t, nil, crane, "ls", "--insecure", a.HTTPAddr+"/team/app"); got != "v1" {
		t.Fatalf("crane ls: %q, want v1", got)
	}

	// Edge B has nothing local: it reads the manifest and the layers
	// through the regional once A's write-through has reached it.
	bref := b.HTTPAddr + "/team/app:v1"
	var got string
	if !waitFor(30*time.Second, func() bool {
		out, err := harness.Run(t, t.TempDir(), nil, crane, "digest", "--insecure", bref)
		got = strings.TrimSpace(out)
		return err == nil
	}) {
		t.Fatalf("edge B never resolved %s: %s", bref, got)
	}
	if got != want {
		t.Fatalf("edge B digest %s, edge A %s", got, want)
	}
	files := tool(t, nil, crane, "export", "--insecure", bref, "-")
	if !strings.Contains(files, "first layer "+ref) || !strings.Contains(files, "second layer second layer") {
		t.Fatalf("edge B's image lacks the layers' files (%d bytes)", len(files))
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	tool(t, nil, crane, "pull", "--insecure", bref, out)

	// Copy between the edges: A's image under a new name on B.
	copied := b.HTTPAddr + "/team/copied:v1"
	tool(t, nil, crane, "copy", "--insecure", ref, copied)
	if d := tool(t, nil, crane, "digest", "--insecure", copied); d != want {
		t.Fatalf("copied digest %s, want %s", d, want)
	}
	// And back from B to A, as another tag.
	tool(t, nil, crane, "copy", "--insecure", copied, a.HTTPAddr+"/team/app:v2")
	if got := tool(t, nil, crane, "ls", "--insecure", a.HTTPAddr+"/team/app"); got != "v1\nv2" {
		t.Fatalf("crane ls after copy: %q", got)
	}
	tool(t, nil, crane, "delete", "--insecure", a.HTTPAddr+"/team/app:v2")

	// The next build re-pushes the tag through A: B, which holds a copy of
	// the old tag, must follow it to the new manifest.
	pushImage(t, crane, ref, "build 2")
	bigManifest(t, crane, ref)
	moved := tool(t, nil, crane, "digest", "--insecure", ref)
	if moved == want {
		t.Fatal("the second build pushed the same image")
	}
	if !waitFor(30*time.Second, func() bool {
		out, err := harness.Run(t, t.TempDir(), nil, crane, "digest", "--insecure", bref)
		got = strings.TrimSpace(out)
		return err == nil && got == moved
	}) {
		t.Fatalf("edge B still resolves %s to %s, edge A pushed %s", bref, got, moved)
	}
	if files := tool(t, nil, crane, "export", "--insecure", bref, "-"); !strings.Contains(files, "build 2") {
		t.Fatal("edge B serves the moved tag's manifest but not its layers")
	}
}

// oras pushes an artifact, pulls it back, attaches a referrer to it and
// discovers it through the referrers API.
func TestOCIOras(t *testing.T) {
	t.Parallel()
	oras := harness.RequireTool(t, "oras")
	n := harness.StartNode(t, nil, nil)
	ref := n.HTTPAddr + "/artifacts/report:v1"
	dir := t.TempDir()
	body := strings.Repeat("artifact bytes\n", 10_000)
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := harness.Run(t, dir, nil, oras, "push", "--plain-http", "--artifact-type", "application/vnd.fabrik.report", ref, "report.txt:text/plain"); err != nil {
		t.Fatalf("oras push: %v\n%s", err, out)
	}
	pulled := t.TempDir()
	tool(t, nil, oras, "pull", "--plain-http", "-o", pulled, ref)
	if got, err := os.ReadFile(filepath.Join(pulled, "report.txt")); err != nil || string(got) != body {
		t.Fatalf("oras pull gave other bytes (%v)", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sig.txt"), []byte("signature"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := harness.Run(t, dir, nil, oras, "attach", "--plain-http", "--artifact-type", "application/vnd.fabrik.signature", ref, "sig.txt:text/plain"); err != nil {
		t.Fatalf("oras attach: %v\n%s", err, out)
	}
	found := tool(t, nil, oras, "discover", "--plain-http", "--format", "json", "--artifact-type", "application/vnd.fabrik.signature", ref)
	if !strings.Contains(found, "application/vnd.fabrik.signature") {
		t.Fatalf("oras discover does not list the signature:\n%s", found)
	}
	none := tool(t, nil, oras, "discover", "--plain-http", "--format", "json", "--artifact-type", "application/vnd.other", ref)
	if strings.Contains(none, "application/vnd.fabrik.signature") {
		t.Fatalf("artifactType filter ignored:\n%s", none)
	}
}

// skopeo copies an image from the edge to a dir: and back under another
// tag; the round trip keeps every byte.
func TestOCISkopeo(t *testing.T) {
	t.Parallel()
	skopeo := harness.RequireTool(t, "skopeo")
	crane := harness.RequireTool(t, "crane")
	n := harness.StartNode(t, nil, nil)
	src := n.HTTPAddr + "/team/app:v1"
	pushImage(t, crane, src, "build 1")

	d1, d2 := filepath.Join(t.TempDir(), "d1"), filepath.Join(t.TempDir(), "d2")
	tool(t, nil, skopeo, "--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+src, "dir:"+d1)
	tool(t, nil, skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", "dir:"+d1, "docker://"+n.HTTPAddr+"/team/fromdir:v1")
	tool(t, nil, skopeo, "--insecure-policy", "copy", "--src-tls-verify=false", "docker://"+n.HTTPAddr+"/team/fromdir:v1", "dir:"+d2)
	entries, err := os.ReadDir(d1)
	if err != nil || len(entries) < 4 {
		t.Fatalf("dir:%s holds %d entries (%v)", d1, len(entries), err)
	}
	for _, e := range entries {
		a, _ := os.ReadFile(filepath.Join(d1, e.Name()))
		b, err := os.ReadFile(filepath.Join(d2, e.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs after the round trip through the edge (%v)", e.Name(), err)
		}
	}
	if tool(t, nil, crane, "digest", "--insecure", src) != tool(t, nil, crane, "digest", "--insecure", n.HTTPAddr+"/team/fromdir:v1") {
		t.Fatal("the image copied back through dir: has another digest")
	}
}

// Behind [auth], crane logged in with a token (as its password) pushes and
// pulls; without credentials it is refused.
func TestOCIAuth(t *testing.T) {
	t.Parallel()
	crane := harness.RequireTool(t, "crane")
	keys := authtest.New(t)
	token := keys.Token(t, authtest.Scopes("cache:read", "cache:write"))
	n := harness.StartNodeWith(t, harness.NodeOptions{ExtraTOML: fmt.Sprintf("[auth]\npublic_key_file = %q\n", keys.File())})
	loggedIn := []string{"DOCKER_CONFIG=" + t.TempDir()}
	anonymous := []string{"DOCKER_CONFIG=" + t.TempDir()}
	tool(t, loggedIn, crane, "auth", "login", n.HTTPAddr, "-u", "ci", "-p", token)
	ref := n.HTTPAddr + "/team/app:v1"
	pushImage(t, crane, ref, "build 1", loggedIn...)
	tool(t, loggedIn, crane, "digest", "--insecure", ref)
	out, err := harness.Run(t, t.TempDir(), anonymous, crane, "digest", "--insecure", ref)
	if err == nil || !strings.Contains(out, "UNAUTHORIZED") {
		t.Fatalf("anonymous crane digest: err %v, output %s", err, out)
	}
}
