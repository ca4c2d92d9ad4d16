package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
	"github.com/tuist/fabrik-node/tenant"
)

// tenantProtocol is one HTTP protocol of the isolation matrix: where an
// artifact named key lives, and the names a client may choose.
type tenantProtocol struct {
	name string
	url  func(key string) string // the same URL whoever asks
	// carry is how the client sends its token.
	carry tokenCarry
}

type tokenCarry int

const (
	bearer    tokenCarry = iota
	basic                // Gradle, ccache: the token as Basic password
	s3Session            // S3: the JWT as the session token
)

func httpTenantProtocols(n *Node) []tenantProtocol {
	base := "http://" + n.Addr("http")
	s3 := "http://" + n.Addr("s3")
	return []tenantProtocol{
		{"gradle", func(k string) string { return base + "/cache/" + k }, basic},
		{"nx", func(k string) string { return base + "/v1/cache/" + k }, bearer},
		// Both tenants name the same Turborepo team: the token decides.
		{"turborepo", func(k string) string { return base + "/v8/artifacts/" + k + "?teamId=team_a" }, bearer},
		// ... and the same bucket, directory, ccache path, action ID, recipe.
		{"s3", func(k string) string { return s3 + "/sccache/a/b/c/" + k }, s3Session},
		{"webdav", func(k string) string { return base + "/webdav/sccache/" + k }, bearer},
		{"ccache", func(k string) string { return base + "/ccache/" + k[:2] + "/" + k[2:] }, basic},
		{"gocache", func(k string) string { return base + "/gocache/" + sha([]byte(k)) }, bearer},
		{"recipes", func(k string) string { return base + "/recipes/v1/runs/" + k }, bearer},
	}
}

// tenantSend is send with the token carried the protocol's way.
func tenantSend(t *testing.T, p tenantProtocol, method, url string, body []byte, tok string) (*http.Response, []byte) {
	t.Helper()
	if p.carry != s3Session {
		return send(t, method, url, body, tok, p.carry == basic)
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	req.Header.Set("X-Amz-Security-Token", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// The isolation matrix on an edge: two tenants' tokens against every
// protocol (read, overwrite, probe by hash, list, detail, stats). Nothing of
// tenant A is ever returned to tenant B, whatever names B chooses; B's
// upload under the same name does not touch A's entry; blobs stay one file.
func TestTenantIsolationOnAnEdge(t *testing.T) {
	keys := authtest.New(t)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth = keys.Config()
	c.Observability.AdminAPIEnabled = true
	n := startNode(t, config.RoleEdge, c)
	tokA := keys.Token(t, authtest.Project("acme"))
	tokB := keys.Token(t, authtest.Project("beta"))
	admin := keys.Token(t, authtest.Scopes("admin"))

	for i, p := range httpTenantProtocols(n) {
		t.Run(p.name, func(t *testing.T) {
			key := fmt.Sprintf("%x", i+1) + strings.Repeat("0", 31)
			bodyA, bodyB := randomBytes(t, 4096), randomBytes(t, 4096)
			put := func(body []byte, tok string) (int, []byte) {
				h := p.url(key)
				if p.name == "gocache" {
					// The output ID is the body's hash: sent as a header.
					req, _ := http.NewRequest("PUT", h, bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("X-Go-Output-Id", sha(body))
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					return resp.StatusCode, nil
				}
				resp, b := tenantSend(t, p, "PUT", h, body, tok)
				return resp.StatusCode, b
			}
			if code, b := put(bodyA, tokA); code/100 != 2 {
				t.Fatalf("A's PUT: %d %s", code, b)
			}
			for _, m := range []string{"GET", "HEAD"} {
				if resp, b := tenantSend(t, p, m, p.url(key), nil, tokB); resp.StatusCode != 404 || len(b) > 0 && bytes.Contains(b, bodyA[:64]) {
					t.Errorf("B's %s of A's entry: %d", m, resp.StatusCode)
				}
			}
			if code, b := put(bodyB, tokB); code/100 != 2 {
				t.Fatalf("B's PUT under the same name: %d %s", code, b)
			}
			if resp, b := tenantSend(t, p, "GET", p.url(key), nil, tokA); resp.StatusCode != 200 || !bytes.Equal(b, bodyA) {
				t.Errorf("A's entry after B's upload: %d, same body %v", resp.StatusCode, bytes.Equal(b, bodyA))
			}
			if resp, b := tenantSend(t, p, "GET", p.url(key), nil, tokB); resp.StatusCode != 200 || !bytes.Equal(b, bodyB) {
				t.Errorf("B's own entry: %d", resp.StatusCode)
			}
		})
	}

	// S3 listings and WebDAV directory listings: B lists none of A's keys.
	if _, b := tenantSend(t, tenantProtocol{carry: s3Session}, "GET", "http://"+n.Addr("s3")+"/sccache?list-type=2", nil, tokB); bytes.Count(b, []byte("<Key>")) != 1 {
		t.Errorf("B's bucket listing holds other than B's one key:\n%s", b)
	}

	// OCI: a layer A pushed is unknown to B in the same repository name.
	layer := randomBytes(t, 3000)
	digest := "sha256:" + sha(layer)
	reg := "http://" + n.Addr("http") + "/v2/team/app"
	if resp, b := send(t, "POST", reg+"/blobs/uploads/?digest="+digest, layer, tokA, false); resp.StatusCode != 201 {
		t.Fatalf("A's layer push: %d %s", resp.StatusCode, b)
	}
	for _, m := range []string{"GET", "HEAD"} {
		if resp, _ := send(t, m, reg+"/blobs/"+digest, nil, tokB, false); resp.StatusCode != 404 {
			t.Errorf("B's %s of A's layer: %d, want 404", m, resp.StatusCode)
		}
	}
	if resp, b := send(t, "GET", reg+"/blobs/"+digest, nil, tokA, false); resp.StatusCode != 200 || !bytes.Equal(b, layer) {
		t.Errorf("A's own layer: %d", resp.StatusCode)
	}

	// Bazel: CAS probes and reads, action results under any instance name.
	ctx := context.Background()
	conn := dial(t, n.Addr("grpc"))
	cas, ac, bs := repb.NewContentAddressableStorageClient(conn), repb.NewActionCacheClient(conn), bspb.NewByteStreamClient(conn)
	blob := randomBytes(t, 2048)
	d := bazelDigest(blob)
	up, err := cas.BatchUpdateBlobs(withToken(ctx, tokA), &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{{Digest: d, Data: blob}}})
	if err != nil || up.Responses[0].Status.GetCode() != 0 {
		t.Fatalf("A's CAS upload: %v %v", err, up)
	}
	action := bazelDigest([]byte("tenant action"))
	result := &repb.ActionResult{OutputFiles: []*repb.OutputFile{{Path: "out", Digest: d}}}
	if _, err := ac.UpdateActionResult(withToken(ctx, tokA), &repb.UpdateActionResultRequest{InstanceName: "main", ActionDigest: action, ActionResult: result}); err != nil {
		t.Fatal(err)
	}
	missing, err := cas.FindMissingBlobs(withToken(ctx, tokB), &repb.FindMissingBlobsRequest{BlobDigests: []*repb.Digest{d}})
	if err != nil || len(missing.MissingBlobDigests) != 1 {
		t.Errorf("FindMissingBlobs reveals A's blob to B: %v %v", err, missing)
	}
	if rd, err := cas.BatchReadBlobs(withToken(ctx, tokB), &repb.BatchReadBlobsRequest{Digests: []*repb.Digest{d}}); err != nil || codes.Code(rd.Responses[0].Status.GetCode()) != codes.NotFound || len(rd.Responses[0].Data) != 0 {
		t.Errorf("BatchReadBlobs gives B A's blob: %v %v", err, rd)
	}
	stream, err := bs.Read(withToken(ctx, tokB), &bspb.ReadRequest{ResourceName: "blobs/" + d.Hash + "/2048"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Errorf("ByteStream.Read gives B A's blob: %v", err)
	}
	if _, err := ac.GetActionResult(withToken(ctx, tokB), &repb.GetActionResultRequest{InstanceName: "main", ActionDigest: action}); status.Code(err) != codes.NotFound {
		t.Errorf("B reads A's action result: %v", err)
	}
	if _, err := ac.GetActionResult(withToken(ctx, tokA), &repb.GetActionResultRequest{InstanceName: "main", ActionDigest: action}); err != nil {
		t.Errorf("A's own action result: %v", err)
	}

	// The query API: B's listing, search, detail and stats hold nothing of
	// A's; an admin token sees every tenant.
	api := "http://" + n.Addr("api")
	for _, path := range []string{"/api/v1/artifacts?limit=1000", "/api/v1/artifacts/top", "/api/v1/artifacts/search?query=" + d.Hash[:12]} {
		_, bodyB := send(t, "GET", api+path, nil, tokB, false)
		if bytes.Contains(bodyB, []byte(d.Hash)) {
			t.Errorf("B's %s lists A's blob", path)
		}
		_, bodyA := send(t, "GET", api+path, nil, tokA, false)
		if !bytes.Contains(bodyA, []byte(d.Hash)) {
			t.Errorf("A's %s does not list A's blob: %s", path, bodyA)
		}
		_, bodyAdmin := send(t, "GET", api+path, nil, admin, false)
		if !bytes.Contains(bodyAdmin, []byte(d.Hash)) {
			t.Errorf("admin's %s does not list A's blob", path)
		}
	}
	if resp, _ := send(t, "GET", api+"/api/v1/artifacts/"+d.Hash, nil, tokB, false); resp.StatusCode != 404 {
		t.Errorf("B's detail of A's blob: %d, want 404", resp.StatusCode)
	}
	if resp, _ := send(t, "GET", api+"/api/v1/artifacts/"+d.Hash, nil, tokA, false); resp.StatusCode != 200 {
		t.Errorf("A's detail of its blob: %d", resp.StatusCode)
	}
	var stB, stAll struct {
		Scope string `json:"scope"`
		Cache struct {
			TotalObjects int64 `json:"total_objects"`
		} `json:"cache"`
	}
	_, b := send(t, "GET", api+"/api/v1/stats", nil, tokB, false)
	json.Unmarshal(b, &stB)
	_, b = send(t, "GET", api+"/api/v1/stats", nil, admin, false)
	json.Unmarshal(b, &stAll)
	if stB.Scope != "tenant:beta" || stB.Cache.TotalObjects < 8 || stAll.Cache.TotalObjects <= stB.Cache.TotalObjects {
		t.Errorf("stats: B %+v, admin %+v; want B's own uploads only", stB, stAll)
	}
	// A's and B's entries are namespaced apart in the store.
	if gk := "1" + strings.Repeat("0", 31); !localHas(n, messages.Ref{Namespace: tenant.Namespace("acme", "gradle"), Key: gk}) ||
		localHas(n, messages.Ref{Namespace: "gradle", Key: gk}) {
		t.Error("a tenant's Gradle entry is not under tenant/acme/gradle")
	}
}

// On a regional, an edge's machine token may use only the tenants it lists
// (a write token of tenant B cannot plant an entry A's edge would serve),
// and Fabrik Delete needs admin. End to end, an edge serving two tenants
// writes through under their namespaces.
func TestTenantBindingOnARegional(t *testing.T) {
	keys := authtest.New(t)
	rc := testConfig(t, config.RoleRegional, t.TempDir())
	rc.Auth = keys.Config()
	regional := startNode(t, config.RoleRegional, rc)
	client := fabrikv1.NewFabrikCacheClient(dial(t, regional.Addr("fabrik")))
	ctx := context.Background()
	acmeEdge := keys.Token(t, authtest.Claim("tenants", []string{"acme"}))
	betaUser := keys.Token(t, authtest.Project("beta"))
	body := randomBytes(t, 1024)
	for _, c := range []struct {
		tok, ns string
		want    codes.Code
	}{
		{acmeEdge, tenant.Namespace("acme", "gradle"), codes.OK},
		{acmeEdge, tenant.Namespace("beta", "gradle"), codes.PermissionDenied},
		{acmeEdge, "turbo/team_a", codes.PermissionDenied}, // outside every tenant
		{betaUser, tenant.Namespace("acme", "turbo/team_a"), codes.PermissionDenied},
		{betaUser, tenant.Namespace("beta", "gradle"), codes.OK},
	} {
		ref := messages.Ref{Namespace: c.ns, Key: "k1"}
		if err := fabrikPut(withToken(ctx, c.tok), client, ref, body); status.Code(err) != c.want {
			t.Errorf("Put %s: %v, want %v", c.ns, err, c.want)
		}
		_, err := client.Exists(withToken(ctx, c.tok), &fabrikv1.ExistsRequest{Ref: &fabrikv1.Ref{Namespace: c.ns, Key: "k1"}})
		if status.Code(err) != c.want {
			t.Errorf("Exists %s: %v, want %v", c.ns, err, c.want)
		}
	}
	if localHas(regional, messages.Ref{Namespace: tenant.Namespace("beta", "gradle"), Key: "k1"}) != true ||
		localHas(regional, messages.Ref{Namespace: "turbo/team_a", Key: "k1"}) {
		t.Error("the regional stored what it refused, or lost what it accepted")
	}
	ref := &fabrikv1.Ref{Namespace: tenant.Namespace("acme", "gradle"), Key: "k1"}
	if _, err := client.Delete(withToken(ctx, acmeEdge), &fabrikv1.DeleteRequest{Ref: ref}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Delete with a write token: %v, want PERMISSION_DENIED", err)
	}
	if _, err := client.Delete(withToken(ctx, keys.Token(t, authtest.Scopes("admin"))), &fabrikv1.DeleteRequest{Ref: ref}); err != nil {
		t.Errorf("Delete with an admin token: %v", err)
	}

	// An edge in front of the regional, serving both tenants.
	ec := testConfig(t, config.RoleEdge, t.TempDir())
	ec.Auth = keys.Config()
	ec.Auth.Token = keys.Token(t, authtest.Claim("tenants", []string{"acme", "beta"}))
	ec.Upstream = []config.UpstreamConfig{upstream("grpc://" + regional.Addr("fabrik"))}
	edge := startNode(t, config.RoleEdge, ec)
	key := strings.Repeat("e", 32)
	if resp, b := send(t, "PUT", "http://"+edge.Addr("http")+"/cache/"+key, body, keys.Token(t, authtest.Project("acme")), true); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT through the edge: %d %s", resp.StatusCode, b)
	}
	eventually(t, "write-through under the tenant's namespace", func() bool {
		return localHas(regional, messages.Ref{Namespace: tenant.Namespace("acme", "gradle"), Key: key})
	})
}
