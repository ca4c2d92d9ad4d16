package bazel

import (
	"bytes"
	"context"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/tuist/fabrik-node/messages"
)

func TestActionCacheRoundTrip(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	out := []byte("compiled output")
	stdout := []byte("hello from the action\n")
	ds := e.put(t, out, stdout)
	action := digestOf([]byte("action proto"))
	result := &repb.ActionResult{
		OutputFiles:  []*repb.OutputFile{{Path: "bin/out", Digest: ds[0], IsExecutable: true}},
		StdoutDigest: ds[1],
		StderrDigest: emptyDigest,
		ExitCode:     0,
	}

	_, err := e.ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: "ci", ActionDigest: action})
	wantCode(t, err, codes.NotFound)

	stored, err := e.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{InstanceName: "ci", ActionDigest: action, ActionResult: result})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(stored, result) {
		t.Errorf("update returned %v", stored)
	}
	got, err := e.ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: "ci", ActionDigest: action})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, result) {
		t.Errorf("got %v, want %v", got, result)
	}
	res, err := e.cache.Stat(ctx, messages.Ref{Namespace: "bazel-ac/ci", Key: action.Hash})
	if err != nil || !res.Found || res.Meta.BuildSystem != "bazel" {
		t.Errorf("stored under bazel-ac/ci: %+v %v", res, err)
	}

	// Another instance, or no instance, does not see the result.
	for _, inst := range []string{"", "other", "ci/sub"} {
		_, err = e.ac.GetActionResult(ctx, &repb.GetActionResultRequest{InstanceName: inst, ActionDigest: action})
		wantCode(t, err, codes.NotFound)
	}

	// Inlining: stdout and the requested output file come back inline.
	got, err = e.ac.GetActionResult(ctx, &repb.GetActionResultRequest{
		InstanceName: "ci", ActionDigest: action, InlineStdout: true, InlineOutputFiles: []string{"bin/out"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.StdoutRaw, stdout) || !bytes.Equal(got.OutputFiles[0].Contents, out) {
		t.Errorf("inline: stdout %q, file %q", got.StdoutRaw, got.OutputFiles[0].Contents)
	}
	if len(got.StderrRaw) != 0 {
		t.Errorf("stderr inlined without being asked: %q", got.StderrRaw)
	}

	hits, misses := e.metrics.HitsMisses()
	if hits != 2 || misses != 4 {
		t.Errorf("hits %d misses %d, want 2 and 4", hits, misses)
	}
	var prom bytes.Buffer
	e.metrics.WritePrometheus(&prom)
	for _, want := range []string{
		`fabrik_cache_hits_by_build_system_total{build_system="bazel"} 2`,
		`fabrik_request_duration_seconds_count{build_system="bazel",op="get_action_result"} 6`,
		`fabrik_request_duration_seconds_count{build_system="bazel",op="update_action_result"} 1`,
	} {
		if !strings.Contains(prom.String(), want) {
			t.Errorf("metrics lack %s in\n%s", want, prom.String())
		}
	}
	if up, _ := e.metrics.Bandwidth(); up == 0 {
		t.Error("uploaded bytes not counted")
	}
}

func TestGetActionResultMissingOutputs(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	present := e.put(t, []byte("present"))[0]
	absent := digestOf([]byte("evicted output"))

	inTree := e.put(t, []byte("file in tree"))[0]
	treeOf := func(file *repb.Digest) *repb.Digest {
		b, err := proto.Marshal(&repb.Tree{
			Root:     &repb.Directory{Directories: []*repb.DirectoryNode{{Name: "sub", Digest: digestOf([]byte("sub"))}}},
			Children: []*repb.Directory{{Files: []*repb.FileNode{{Name: "f", Digest: file}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return e.put(t, b)[0]
	}
	goodTree, badTree := treeOf(inTree), treeOf(absent)

	cases := map[string]struct {
		result *repb.ActionResult
		want   codes.Code
	}{
		"all present":         {&repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "a", Digest: present}}, OutputDirectories: []*repb.OutputDirectory{{Path: "d", TreeDigest: goodTree}}}, codes.OK},
		"output file missing": {&repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "a", Digest: present}, {Path: "b", Digest: absent}}}, codes.NotFound},
		"stdout missing":      {&repb.ActionResult{StdoutDigest: absent}, codes.NotFound},
		"stderr missing":      {&repb.ActionResult{StderrDigest: absent}, codes.NotFound},
		"tree missing":        {&repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{Path: "d", TreeDigest: absent}}}, codes.NotFound},
		"file in tree gone":   {&repb.ActionResult{OutputDirectories: []*repb.OutputDirectory{{Path: "d", TreeDigest: badTree}}}, codes.NotFound},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			action := digestOf([]byte(name))
			if _, err := e.ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{ActionDigest: action, ActionResult: c.result}); err != nil {
				t.Fatal(err)
			}
			_, err := e.ac.GetActionResult(ctx, &repb.GetActionResultRequest{ActionDigest: action})
			wantCode(t, err, c.want)
		})
	}
}

func TestActionCacheBadInput(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := context.Background()
	action := digestOf([]byte("action"))
	for name, req := range map[string]*repb.UpdateActionResultRequest{
		"no result":          {ActionDigest: action},
		"bad action digest":  {ActionDigest: &repb.Digest{Hash: "12", SizeBytes: 1}, ActionResult: &repb.ActionResult{}},
		"negative size":      {ActionDigest: &repb.Digest{Hash: action.Hash, SizeBytes: -5}, ActionResult: &repb.ActionResult{}},
		"bad output digest":  {ActionDigest: action, ActionResult: &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "x", Digest: &repb.Digest{Hash: "zz"}}}}},
		"output file no dig": {ActionDigest: action, ActionResult: &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "x"}}}},
		"reserved instance":  {InstanceName: "actionResults", ActionDigest: action, ActionResult: &repb.ActionResult{}},
		"digest function":    {DigestFunction: repb.DigestFunction_MD5, ActionDigest: action, ActionResult: &repb.ActionResult{}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.ac.UpdateActionResult(ctx, req)
			wantCode(t, err, codes.InvalidArgument)
			res, err := e.cache.Stat(ctx, messages.Ref{Namespace: acNamespace, Key: action.Hash})
			if err != nil || res.Found {
				t.Errorf("something was stored: %+v %v", res, err)
			}
		})
	}
	_, err := e.ac.GetActionResult(ctx, &repb.GetActionResultRequest{ActionDigest: &repb.Digest{Hash: "nothex!", SizeBytes: 1}})
	wantCode(t, err, codes.InvalidArgument)
}
