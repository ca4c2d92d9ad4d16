package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/e2e/harness"
)

// The layers end to end: Gradle builds on edge A, A writes through to a
// regional node, and a fresh edge B (empty local cache, same regional
// upstream) serves the same project's build FROM-CACHE out of the regional.
func TestRegionalChainGradle(t *testing.T) {
	t.Parallel()
	harness.RequireTool(t, "gradle")
	regional := harness.StartNode(t, []string{"--role", "regional"}, nil)
	upstream := harness.NodeOptions{
		ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\n", "grpc://"+regional.FabrikAddr),
	}
	edgeA := harness.StartNodeWith(t, upstream)

	dirA := harness.CopyFixture(t, "gradle")
	gradleMustMiss(t, gradleBuild(t, dirA, edgeA.HTTPURL()+"/cache/", ""))

	// Write-through is asynchronous: wait until the regional holds what
	// the build stored.
	var objects float64
	if !waitFor(30*time.Second, func() bool {
		objects = scrape(t, regional, "")["fabrik_cache_objects"]
		return objects >= gradleCacheable
	}) {
		t.Fatalf("regional holds %v objects 30s after the build on edge A, want >= %d\nedge A log:\n%s",
			objects, gradleCacheable, edgeA.Logs())
	}
	before := scrape(t, regional, "")

	edgeB := harness.StartNodeWith(t, upstream)
	if got := scrape(t, edgeB, "")["fabrik_cache_objects"]; got != 0 {
		t.Fatalf("edge B starts with %v objects; the test needs an empty one", got)
	}
	dirB := harness.CopyFixture(t, "gradle")
	out := gradleBuild(t, dirB, edgeB.HTTPURL()+"/cache/", "")
	gradleMustHit(t, dirB, out)

	b := scrape(t, edgeB, "")
	if b.hitsOf("gradle") != gradleCacheable {
		t.Fatalf(`edge B: hits{build_system="gradle"} = %v, want %d`, b.hitsOf("gradle"), gradleCacheable)
	}
	after := scrape(t, regional, "")
	if got := after.hits() - before.hits(); got < gradleCacheable {
		t.Fatalf("regional served %v hits to edge B, want >= %d", got, gradleCacheable)
	}
}
