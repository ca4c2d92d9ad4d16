package node

import (
	"fmt"
	"testing"

	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/internal/minio"
	"github.com/tuist/fabrik-node/messages"
)

// The admin API's delete and clear reach the upstreams that are not
// permanent: a real regional loses the artifacts, a permanent S3 upstream
// (real MinIO) keeps every object.
func TestAdminDeleteAndClearSparePermanentUpstream(t *testing.T) {
	srv := minio.Start(t)
	srv.CreateBucket(t, "cache")
	rc := testConfig(t, config.RoleRegional, t.TempDir())
	rc.Upstream = nil
	regional := startNode(t, config.RoleRegional, rc)

	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Observability.AdminAPIEnabled = true
	s3 := s3Upstream(srv, "cache")
	s3.Permanent = true
	c.Upstream = []config.UpstreamConfig{upstream("grpc://" + regional.Addr("fabrik")), s3}
	edge := startNode(t, config.RoleEdge, c)

	keys := make([]string, 3)
	hashes := make([]string, 3)
	for i := range keys {
		keys[i] = fmt.Sprintf("%032x", 0xde1e7e00+i)
		body := randomBytes(t, 5_000+i)
		hashes[i] = sha(body)
		gradlePut(t, edge, keys[i], body)
	}
	ref := func(i int) messages.Ref { return messages.Ref{Namespace: "gradle", Key: keys[i]} }
	for i := range keys {
		eventually(t, "write-through to the regional", func() bool { return localHas(regional, ref(i)) })
		for _, obj := range gradleObjects(keys[i], hashes[i]) {
			eventually(t, "write-through to S3 of "+obj, func() bool { return s3Has(t, srv, "cache", obj) })
		}
	}

	out := mustAPI(t, edge, "POST", "/api/v1/admin/delete", map[string]any{"namespace": "gradle", "key": keys[0]})
	if out["deleted"] != true {
		t.Fatalf("delete: %v", out)
	}
	if localHas(edge, ref(0)) || localHas(regional, ref(0)) {
		t.Fatalf("after delete: edge has it %v, regional has it %v; want neither", localHas(edge, ref(0)), localHas(regional, ref(0)))
	}
	if !localHas(regional, ref(1)) {
		t.Fatal("delete of one key removed another from the regional")
	}
	if code, out := api(t, edge, "POST", "/api/v1/admin/delete", "", map[string]any{"namespace": "gradle"}); code != 400 {
		t.Errorf("delete without a key: %d %v, want 400", code, out)
	}

	out = mustAPI(t, edge, "POST", "/api/v1/admin/clear", map[string]any{"confirm": true})
	if out["cleared"] != true || num(out, "removed_objects") != 2 {
		t.Fatalf("clear: %v", out)
	}
	for i := range keys {
		if localHas(edge, ref(i)) || localHas(regional, ref(i)) {
			t.Errorf("key %d survived the clear: edge %v, regional %v", i, localHas(edge, ref(i)), localHas(regional, ref(i)))
		}
		for _, obj := range gradleObjects(keys[i], hashes[i]) {
			if !s3Has(t, srv, "cache", obj) {
				t.Errorf("the permanent S3 upstream lost %s", obj)
			}
		}
	}
}
