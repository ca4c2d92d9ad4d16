package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	repb "github.com/bazelbuild/remote-apis/build/bazel/remote/execution/v2"
	"github.com/google/uuid"
	bspb "google.golang.org/genproto/googleapis/bytestream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tuist/fabrik-node/auth/authtest"
	"github.com/tuist/fabrik-node/config"
	"github.com/tuist/fabrik-node/messages"
	fabrikv1 "github.com/tuist/fabrik-node/proto/fabrik/v1"
)

// The refusal matrix (authtest.Matrix) run against every protocol of real
// nodes: each endpoint gets every forged, broken, under-scoped and valid
// token, and refused writes must leave the store untouched. HTTP adapters
// are here, gRPC ones in the second half of the file.

const (
	needRead  = "cache:read"
	needWrite = "cache:write"
)

// syncLog collects a node's log lines for assertions on what it logged.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged is startNode with the node's log kept (and echoed with -v).
func startLogged(t *testing.T, role config.Role, c config.Config) (*Node, *syncLog) {
	t.Helper()
	sl := &syncLog{}
	var w io.Writer = sl
	if testing.Verbose() {
		w = io.MultiWriter(sl, os.Stderr)
	}
	n, err := New(Options{Role: role, Config: c, Logger: slog.New(slog.NewTextHandler(w, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatalf("start %s node: %v", role, err)
	}
	t.Cleanup(func() { n.Stop(context.Background()) })
	return n, sl
}

// seedArtifact stores body under ref through the node's router, as an
// earlier authorized upload would have.
func seedArtifact(t *testing.T, n *Node, ref messages.Ref, body []byte) {
	t.Helper()
	st, err := n.Cache().Stage("", int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	st.Write(body)
	if err := st.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := n.Cache().Put(t.Context(), ref, messages.Meta{BuildSystem: ref.Namespace}, st); err != nil {
		t.Fatalf("seed %s: %v", ref, err)
	}
}

// send makes one HTTP request carrying token as Bearer, or as the password
// of Basic credentials (Gradle's credentials { username; password }).
func send(t *testing.T, method, url string, body []byte, token string, basic bool) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case token == "":
	case basic:
		req.SetBasicAuth("gradle-user", token)
	default:
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

// httpRoute is one endpoint of an HTTP adapter under the matrix.
type httpRoute struct {
	name, method, port, need string
	// path holds %s where writes put a key of their own per case.
	path  string
	body  []byte // nil: a write sends its own per-case body
	basic bool
	// ns is set for writes: a case's upload would be stored at ns/key.
	ns string
	ok int // status of an allowed request
	// want is the body an allowed read gets (nil: not checked).
	want []byte
	// shape checks the protocol's refusal body (status 401 or 403).
	shape func(t *testing.T, resp *http.Response, body []byte)
}

func plainShape(t *testing.T, resp *http.Response, _ []byte) {
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("refusal Content-Type %q, want text/plain", ct)
	}
}

// nxShape: Nx shows the message of a 401 only when its Content-Type is
// exactly text/plain, and calls the server misconfigured otherwise.
func nxShape(t *testing.T, resp *http.Response, _ []byte) {
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
		t.Errorf("Nx refusal Content-Type %q, want exactly text/plain", ct)
	}
}

// turboShape: turbo parses {"error":{"code","message"}}.
func turboShape(t *testing.T, resp *http.Response, body []byte) {
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("turbo refusal Content-Type %q, want application/json", ct)
	}
	if resp.Request.Method == http.MethodHead {
		return
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("turbo refusal body %q: %v", body, err)
	}
	want := map[int]string{401: "unauthorized", 403: "forbidden"}[resp.StatusCode]
	if e.Error.Code != want || e.Error.Message == "" {
		t.Errorf("turbo refusal body %q, want code %q and a message", body, want)
	}
}

// checkRefusal asserts the status and headers every HTTP refusal shares.
func checkRefusal(t *testing.T, resp *http.Response, want authtest.Want) {
	t.Helper()
	challenges := strings.Join(resp.Header.Values("WWW-Authenticate"), " | ")
	switch want {
	case authtest.Unauthenticated:
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %s, want 401", resp.Status)
		}
		// Basic is offered too: Gradle only sends credentials when challenged.
		if !strings.Contains(challenges, `Bearer realm="fabrik"`) || !strings.Contains(challenges, `Basic realm="fabrik"`) {
			t.Errorf("401 WWW-Authenticate %q lacks the Bearer and Basic challenges", challenges)
		}
	case authtest.Forbidden:
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %s, want 403", resp.Status)
		}
		if !strings.Contains(challenges, "insufficient_scope") {
			t.Errorf("403 WWW-Authenticate %q does not say insufficient_scope", challenges)
		}
	}
}

// TestAuthMatrixHTTP runs the matrix over every HTTP endpoint of an edge
// (Gradle, Nx, Turborepo, ccache, WebDAV) and its API port, the edge trusting one
// public_key_file.
func TestAuthMatrixHTTP(t *testing.T) {
	keys := authtest.New(t)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth.PublicKeyFile = keys.File()
	n, _ := startLogged(t, config.RoleEdge, c)

	const seedKey = "5eed5eed5eed5eed5eed5eed5eed5eed"
	seed := randomBytes(t, 10<<10)
	for _, ns := range []string{"gradle", "nx", "turbo", "ccache", "webdav"} {
		seedArtifact(t, n, messages.Ref{Namespace: ns, Key: seedKey}, seed)
	}
	query := []byte(`{"hashes":["` + seedKey + `"]}`)
	events := []byte(`[{"sessionId":"s","source":"REMOTE","event":"HIT","hash":"` + seedKey + `","duration":1}]`)
	routes := []httpRoute{
		{name: "gradle GET bearer", method: "GET", port: "http", need: needRead, path: "/cache/" + seedKey, ok: 200, want: seed, shape: plainShape},
		{name: "gradle GET basic", method: "GET", port: "http", need: needRead, path: "/cache/" + seedKey, basic: true, ok: 200, want: seed, shape: plainShape},
		{name: "gradle HEAD", method: "HEAD", port: "http", need: needRead, path: "/cache/" + seedKey, ok: 200, shape: plainShape},
		{name: "gradle PUT bearer", method: "PUT", port: "http", need: needWrite, path: "/cache/%s", ns: "gradle", ok: 200, shape: plainShape},
		{name: "gradle PUT basic", method: "PUT", port: "http", need: needWrite, path: "/cache/%s", basic: true, ns: "gradle", ok: 200, shape: plainShape},
		{name: "nx GET", method: "GET", port: "http", need: needRead, path: "/v1/cache/" + seedKey, ok: 200, want: seed, shape: nxShape},
		{name: "nx PUT", method: "PUT", port: "http", need: needWrite, path: "/v1/cache/%s", ns: "nx", ok: 200, shape: nxShape},
		{name: "turbo GET", method: "GET", port: "http", need: needRead, path: "/v8/artifacts/" + seedKey, ok: 200, want: seed, shape: turboShape},
		{name: "turbo HEAD", method: "HEAD", port: "http", need: needRead, path: "/v8/artifacts/" + seedKey, ok: 200, shape: turboShape},
		{name: "turbo PUT", method: "PUT", port: "http", need: needWrite, path: "/v8/artifacts/%s", ns: "turbo", ok: 202, shape: turboShape},
		{name: "turbo query", method: "POST", port: "http", need: needRead, path: "/v8/artifacts", body: query, ok: 200, shape: turboShape},
		{name: "turbo status", method: "GET", port: "http", need: needRead, path: "/v8/artifacts/status", ok: 200, shape: turboShape},
		{name: "turbo events", method: "POST", port: "http", need: needRead, path: "/v8/artifacts/events", body: events, ok: 200, shape: turboShape},
		{name: "ccache GET bearer", method: "GET", port: "http", need: needRead, path: "/ccache/" + seedKey, ok: 200, want: seed, shape: plainShape},
		{name: "ccache GET basic", method: "GET", port: "http", need: needRead, path: "/ccache/" + seedKey, basic: true, ok: 200, want: seed, shape: plainShape},
		{name: "ccache HEAD", method: "HEAD", port: "http", need: needRead, path: "/ccache/" + seedKey, ok: 200, shape: plainShape},
		{name: "ccache PUT bearer", method: "PUT", port: "http", need: needWrite, path: "/ccache/%s", ns: "ccache", ok: 200, shape: plainShape},
		{name: "ccache PUT basic", method: "PUT", port: "http", need: needWrite, path: "/ccache/%s", basic: true, ns: "ccache", ok: 200, shape: plainShape},
		{name: "webdav GET basic", method: "GET", port: "http", need: needRead, path: "/webdav/" + seedKey, basic: true, ok: 200, want: seed, shape: plainShape},
		{name: "webdav HEAD", method: "HEAD", port: "http", need: needRead, path: "/webdav/" + seedKey, ok: 200, shape: plainShape},
		{name: "webdav PUT bearer", method: "PUT", port: "http", need: needWrite, path: "/webdav/%s", ns: "webdav", ok: 201, shape: plainShape},
		{name: "webdav PUT basic", method: "PUT", port: "http", need: needWrite, path: "/webdav/%s", basic: true, ns: "webdav", ok: 201, shape: plainShape},
		{name: "api metrics", method: "GET", port: "api", need: needRead, path: "/metrics", ok: 200, shape: plainShape},
		{name: "api stats", method: "GET", port: "api", need: needRead, path: "/api/v1/stats", ok: 200, shape: plainShape},
	}
	matrix := map[string][]authtest.Case{needRead: keys.Matrix(t, needRead), needWrite: keys.Matrix(t, needWrite), "admin": keys.Matrix(t, "admin")}
	for ri, r := range routes {
		for ci, tc := range matrix[r.need] {
			t.Run(r.name+"/"+tc.Name, func(t *testing.T) {
				key := fmt.Sprintf("%016x%016x", ri, ci)
				path, body := r.path, r.body
				if r.ns != "" {
					path, body = fmt.Sprintf(r.path, key), []byte("artifact "+key)
				}
				resp, got := send(t, r.method, "http://"+n.Addr(r.port)+path, body, tc.Token, r.basic)
				if tc.Want == authtest.Allowed {
					if resp.StatusCode != r.ok {
						t.Fatalf("status %s %q, want %d", resp.Status, got, r.ok)
					}
					if r.want != nil && !bytes.Equal(got, r.want) {
						t.Fatalf("served %d bytes, not the seeded artifact", len(got))
					}
				} else {
					checkRefusal(t, resp, tc.Want)
					r.shape(t, resp, got)
					if bytes.Contains(got, seed) {
						t.Fatal("a refused request was served the artifact")
					}
				}
				if r.ns != "" {
					ref := messages.Ref{Namespace: r.ns, Key: key}
					if stored := localHas(n, ref); stored != (tc.Want == authtest.Allowed) {
						t.Fatalf("%s stored=%v after a %s upload", ref, stored, tc.Want)
					}
				}
			})
		}
	}
}

// TestAuthPublicEndpoints: /health and turbo's CORS preflight answer without
// a token, and a bad token does not make them refuse either.
func TestAuthPublicEndpoints(t *testing.T) {
	keys := authtest.New(t)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth = keys.Config()
	n, _ := startLogged(t, config.RoleEdge, c)
	for _, tok := range []string{"", "not.a.jwt"} {
		for _, u := range []struct{ method, url string }{
			{"GET", "http://" + n.Addr("health") + "/health"},
			{"OPTIONS", "http://" + n.Addr("http") + "/v8/artifacts"},
			{"OPTIONS", "http://" + n.Addr("http") + "/v8/artifacts/abc123"},
		} {
			if resp, b := send(t, u.method, u.url, nil, tok, false); resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s with token %q: %s %q, want 200", u.method, u.url, tok, resp.Status, b)
			}
		}
	}
}

// TestAuthKeyRotationLive: a key added to public_keys_dir is trusted within
// seconds without a restart, and a removed key's tokens are refused.
func TestAuthKeyRotationLive(t *testing.T) {
	old, next := authtest.New(t), authtest.New(t)
	dir := t.TempDir()
	oldPath := old.WriteTo(t, dir)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth = old.Config()
	c.Auth.PublicKeysDir = dir
	n, _ := startLogged(t, config.RoleEdge, c)
	oldTok, nextTok := old.Token(t), next.Token(t)
	// A miss (404) means the token was accepted.
	status := func(tok string) int {
		resp, _ := send(t, "GET", "http://"+n.Addr("http")+"/cache/"+key1, nil, tok, false)
		return resp.StatusCode
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		start := time.Now()
		for !cond() {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s: not within 5s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got := status(oldTok); got != 404 {
		t.Fatalf("old key's token before rotation: %d, want 404", got)
	}
	if got := status(nextTok); got != 401 {
		t.Fatalf("new key's token before its key is installed: %d, want 401", got)
	}
	if got := bazelCapabilities(t, n, nextTok); got != "Unauthenticated" {
		t.Fatalf("gRPC with the new key's token before rotation: %s", got)
	}

	next.WriteTo(t, dir)
	within("new kid accepted", func() bool { return status(nextTok) == 404 })
	if got := bazelCapabilities(t, n, nextTok); got != "OK" {
		t.Fatalf("gRPC with the new key's token after rotation: %s, want OK", got)
	}
	if got := status(oldTok); got != 404 {
		t.Fatalf("old key's token while both keys are installed: %d, want 404", got)
	}

	if err := os.Remove(oldPath); err != nil {
		t.Fatal(err)
	}
	within("removed kid refused", func() bool { return status(oldTok) == 401 })
	if got := bazelCapabilities(t, n, oldTok); got != "Unauthenticated" {
		t.Fatalf("gRPC with the removed key's token: %s, want Unauthenticated", got)
	}
	if got := status(nextTok); got != 404 {
		t.Fatalf("new key's token after the old key left: %d, want 404", got)
	}
}

// rpcRoute is one gRPC method under the matrix. call gets a context
// carrying the case's token and a key of the case's own.
type rpcRoute struct {
	name, need string
	call       func(ctx context.Context, key string) error
	// stored names where a write's effect lands; removes says the write
	// deletes it (seeded first) instead of storing it.
	stored  func(key string) messages.Ref
	removes bool
	ok      codes.Code // code of an allowed call
}

// withToken is how Bazel (--remote_header) and edges send a token.
func withToken(ctx context.Context, tok string) context.Context {
	if tok == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// runRPCMatrix runs every case of the matrix against every route of n.
func runRPCMatrix(t *testing.T, n *Node, keys *authtest.Keys, routes []rpcRoute) {
	matrix := map[string][]authtest.Case{needRead: keys.Matrix(t, needRead), needWrite: keys.Matrix(t, needWrite), "admin": keys.Matrix(t, "admin")}
	wantCode := map[authtest.Want]codes.Code{authtest.Unauthenticated: codes.Unauthenticated, authtest.Forbidden: codes.PermissionDenied}
	for ri, r := range routes {
		for ci, tc := range matrix[r.need] {
			t.Run(r.name+"/"+tc.Name, func(t *testing.T) {
				key := fmt.Sprintf("%016x%016x", ri+100, ci)
				var ref messages.Ref
				if r.stored != nil {
					ref = r.stored(key)
				}
				if r.removes {
					seedArtifact(t, n, ref, []byte("to be deleted "+key))
				}
				ctx, cancel := context.WithTimeout(withToken(t.Context(), tc.Token), 5*time.Second)
				defer cancel()
				want := wantCode[tc.Want]
				if tc.Want == authtest.Allowed {
					want = r.ok
				}
				if got := status.Code(r.call(ctx, key)); got != want {
					t.Fatalf("code %s, want %s", got, want)
				}
				if r.stored != nil {
					effect := localHas(n, ref) != r.removes
					if effect != (tc.Want == authtest.Allowed) {
						t.Fatalf("%s: write took effect=%v after a %s call", ref, effect, tc.Want)
					}
				}
			})
		}
	}
}

func bazelDigest(b []byte) *repb.Digest { return &repb.Digest{Hash: sha(b), SizeBytes: int64(len(b))} }

// TestAuthMatrixBazel runs the matrix over Bazel's REAPI on an edge; the
// health service stays public.
func TestAuthMatrixBazel(t *testing.T) {
	keys := authtest.New(t)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth.PublicKeyFile = keys.File()
	n, _ := startLogged(t, config.RoleEdge, c)
	conn := dial(t, n.Addr("grpc"))
	capc, cas := repb.NewCapabilitiesClient(conn), repb.NewContentAddressableStorageClient(conn)
	ac, bs := repb.NewActionCacheClient(conn), bspb.NewByteStreamClient(conn)
	seed := randomBytes(t, 4<<10)
	seedArtifact(t, n, messages.Ref{Namespace: messages.CAS, Key: sha(seed)}, seed)
	blob := func(key string) []byte { return []byte("bazel blob " + key) }
	casRef := func(key string) messages.Ref { return messages.Ref{Namespace: messages.CAS, Key: sha(blob(key))} }
	action := func(key string) []byte { return []byte("action " + key) }

	runRPCMatrix(t, n, keys, []rpcRoute{
		{name: "GetCapabilities", need: needRead, call: func(ctx context.Context, _ string) error {
			_, err := capc.GetCapabilities(ctx, &repb.GetCapabilitiesRequest{})
			return err
		}},
		{name: "FindMissingBlobs", need: needRead, call: func(ctx context.Context, _ string) error {
			_, err := cas.FindMissingBlobs(ctx, &repb.FindMissingBlobsRequest{BlobDigests: []*repb.Digest{bazelDigest(seed)}})
			return err
		}},
		{name: "BatchReadBlobs", need: needRead, call: func(ctx context.Context, _ string) error {
			_, err := cas.BatchReadBlobs(ctx, &repb.BatchReadBlobsRequest{Digests: []*repb.Digest{bazelDigest(seed)}})
			return err
		}},
		{name: "ByteStream Read", need: needRead, call: func(ctx context.Context, _ string) error {
			st, err := bs.Read(ctx, &bspb.ReadRequest{ResourceName: fmt.Sprintf("blobs/%s/%d", sha(seed), len(seed))})
			if err != nil {
				return err
			}
			var got []byte
			for {
				m, err := st.Recv()
				if err == io.EOF {
					break
				} else if err != nil {
					return err
				}
				got = append(got, m.Data...)
			}
			if !bytes.Equal(got, seed) {
				return status.Error(codes.DataLoss, "read the wrong bytes")
			}
			return nil
		}},
		{name: "GetActionResult", need: needRead, ok: codes.NotFound, call: func(ctx context.Context, key string) error {
			_, err := ac.GetActionResult(ctx, &repb.GetActionResultRequest{ActionDigest: bazelDigest(action(key))})
			return err
		}},
		{name: "BatchUpdateBlobs", need: needWrite, stored: casRef, call: func(ctx context.Context, key string) error {
			res, err := cas.BatchUpdateBlobs(ctx, &repb.BatchUpdateBlobsRequest{Requests: []*repb.BatchUpdateBlobsRequest_Request{
				{Digest: bazelDigest(blob(key)), Data: blob(key)},
			}})
			if err != nil {
				return err
			}
			return status.ErrorProto(res.Responses[0].Status)
		}},
		{name: "ByteStream Write", need: needWrite, stored: casRef, call: func(ctx context.Context, key string) error {
			st, err := bs.Write(ctx)
			if err != nil {
				return err
			}
			b := blob(key)
			name := fmt.Sprintf("uploads/%s/blobs/%s/%d", uuid.NewString(), sha(b), len(b))
			// A refusal may already have closed the stream: Send then
			// reports EOF and CloseAndRecv the status.
			_ = st.Send(&bspb.WriteRequest{ResourceName: name, Data: b, FinishWrite: true})
			_, err = st.CloseAndRecv()
			return err
		}},
		{name: "UpdateActionResult", need: needWrite, call: func(ctx context.Context, key string) error {
			_, err := ac.UpdateActionResult(ctx, &repb.UpdateActionResultRequest{
				ActionDigest: bazelDigest(action(key)), ActionResult: &repb.ActionResult{ExitCode: 0},
			})
			return err
		}, stored: func(key string) messages.Ref { return messages.Ref{Namespace: "bazel-ac", Key: sha(action(key))} }},
	})

	// Health stays public whatever the token.
	for _, tok := range []string{"", "not.a.jwt"} {
		res, err := healthpb.NewHealthClient(conn).Check(withToken(t.Context(), tok), &healthpb.HealthCheckRequest{})
		if err != nil || res.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health with token %q: %v %v", tok, res, err)
		}
	}
}

// TestAuthUnknownRPCNeedsWrite: a method the scope table does not list
// (SpliceBlob writes a blob from chunks) must not be open to a read-only
// token: the node fails closed, whether or not the adapter implements it.
func TestAuthUnknownRPCNeedsWrite(t *testing.T) {
	keys := authtest.New(t)
	c := testConfig(t, config.RoleEdge, t.TempDir())
	c.Auth.PublicKeyFile = keys.File()
	n, _ := startLogged(t, config.RoleEdge, c)
	cas := repb.NewContentAddressableStorageClient(dial(t, n.Addr("grpc")))
	ctx := withToken(t.Context(), keys.Token(t, authtest.Scopes(needRead)))
	_, err := cas.SpliceBlob(ctx, &repb.SpliceBlobRequest{BlobDigest: bazelDigest([]byte("x"))})
	if got := status.Code(err); got != codes.PermissionDenied {
		t.Fatalf("SpliceBlob with a read-only token: %s (%v), want PermissionDenied", got, err)
	}
}

// bazelCapabilities is the code of one GetCapabilities call with tok.
func bazelCapabilities(t *testing.T, n *Node, tok string) string {
	t.Helper()
	_, err := repb.NewCapabilitiesClient(dial(t, n.Addr("grpc"))).GetCapabilities(withToken(t.Context(), tok), &repb.GetCapabilitiesRequest{})
	return status.Code(err).String()
}

// fabrikPut uploads body as ref over the Fabrik protocol.
func fabrikPut(ctx context.Context, c fabrikv1.FabrikCacheClient, ref messages.Ref, body []byte) error {
	st, err := c.Put(ctx)
	if err != nil {
		return err
	}
	_ = st.Send(&fabrikv1.PutRequest{Payload: &fabrikv1.PutRequest_Header{Header: &fabrikv1.PutHeader{
		Ref: &fabrikv1.Ref{Namespace: ref.Namespace, Key: ref.Key}, Hash: sha(body), Size: int64(len(body)), BuildSystem: "gradle",
	}}})
	_ = st.Send(&fabrikv1.PutRequest{Payload: &fabrikv1.PutRequest_Chunk{Chunk: body}})
	_, err = st.CloseAndRecv()
	return err
}

// TestAuthMatrixFabrik runs the matrix over the Fabrik protocol of a
// regional trusting a public_keys_dir.
func TestAuthMatrixFabrik(t *testing.T) {
	keys := authtest.New(t)
	c := testConfig(t, config.RoleRegional, t.TempDir())
	c.Auth = keys.Config()
	n, _ := startLogged(t, config.RoleRegional, c)
	fc := fabrikv1.NewFabrikCacheClient(dial(t, n.Addr("fabrik")))
	seedRef := messages.Ref{Namespace: "gradle", Key: key1}
	seed := randomBytes(t, 4<<10)
	seedArtifact(t, n, seedRef, seed)
	pref := &fabrikv1.Ref{Namespace: seedRef.Namespace, Key: seedRef.Key}
	gradleRef := func(key string) messages.Ref { return messages.Ref{Namespace: "gradle", Key: key} }

	runRPCMatrix(t, n, keys, []rpcRoute{
		{name: "Exists", need: needRead, call: func(ctx context.Context, _ string) error {
			res, err := fc.Exists(ctx, &fabrikv1.ExistsRequest{Ref: pref})
			if err == nil && !res.Found {
				return status.Error(codes.NotFound, "seed not found")
			}
			return err
		}},
		{name: "Get", need: needRead, call: func(ctx context.Context, _ string) error {
			st, err := fc.Get(ctx, &fabrikv1.GetRequest{Ref: pref})
			if err != nil {
				return err
			}
			var got []byte
			for {
				m, err := st.Recv()
				if err == io.EOF {
					break
				} else if err != nil {
					return err
				}
				got = append(got, m.GetChunk()...)
			}
			if !bytes.Equal(got, seed) {
				return status.Error(codes.DataLoss, "read the wrong bytes")
			}
			return nil
		}},
		{name: "GetStats", need: needRead, call: func(ctx context.Context, _ string) error {
			_, err := fc.GetStats(ctx, &fabrikv1.GetStatsRequest{})
			return err
		}},
		{name: "Put", need: needWrite, stored: gradleRef, call: func(ctx context.Context, key string) error {
			return fabrikPut(ctx, fc, gradleRef(key), []byte("fabrik put "+key))
		}},
		// Deleting what other edges rely on is an operator's act: admin.
		{name: "Delete", need: "admin", stored: gradleRef, removes: true, call: func(ctx context.Context, key string) error {
			_, err := fc.Delete(ctx, &fabrikv1.DeleteRequest{Ref: &fabrikv1.Ref{Namespace: "gradle", Key: key}})
			return err
		}},
	})
}

// gradleWith is a Gradle request to n carrying the build tool's token.
func gradleWith(t *testing.T, n *Node, method, key string, body []byte, tok string) (int, []byte) {
	t.Helper()
	resp, b := send(t, method, "http://"+n.Addr("http")+"/cache/"+key, body, tok, true)
	return resp.StatusCode, b
}

// TestAuthEdgePresentsItsOwnToken: an edge with auth off but a machine
// token writes through to and reads through from a regional that requires
// tokens, whatever the build tool sent; an edge without a token only gets
// misses and refused uploads, which the regional logs and counts.
func TestAuthEdgePresentsItsOwnToken(t *testing.T) {
	t.Setenv("FABRIK_TOKEN", "") // the token-less edge must really have none
	keys := authtest.New(t)
	rc := testConfig(t, config.RoleRegional, t.TempDir())
	rc.Auth = keys.Config()
	regional, rlog := startLogged(t, config.RoleRegional, rc)
	up := []config.UpstreamConfig{upstream("grpc://" + regional.Addr("fabrik"))}
	machine := keys.Token(t, authtest.Subject("edge-machine"))
	// What build tools send: tokens the regional would refuse, one for
	// writing (read-only), one outright (signed by a key it does not trust).
	readOnly := keys.Token(t, authtest.Scopes(needRead))
	foreign := authtest.New(t).Token(t)

	ec := testConfig(t, config.RoleEdge, t.TempDir())
	ec.Upstream, ec.Auth.Token = up, machine
	edge := startNode(t, config.RoleEdge, ec)
	written := randomBytes(t, 200<<10)
	if code, b := gradleWith(t, edge, "PUT", key1, written, readOnly); code != 200 {
		t.Fatalf("PUT through an edge with auth off: %d %q", code, b)
	}
	eventually(t, "write-through with the machine token", func() bool {
		return localHas(regional, messages.Ref{Namespace: "gradle", Key: key1})
	})

	const key2 = "00000000000000000000000000000002"
	held := randomBytes(t, 100<<10)
	seedArtifact(t, regional, messages.Ref{Namespace: "gradle", Key: key2}, held)
	ec2 := testConfig(t, config.RoleEdge, t.TempDir())
	ec2.Upstream, ec2.Auth.Token = up, machine
	edge2 := startNode(t, config.RoleEdge, ec2)
	if code, b := gradleWith(t, edge2, "GET", key2, nil, foreign); code != 200 || !bytes.Equal(b, held) {
		t.Fatalf("read-through with the machine token: %d, %d bytes", code, len(b))
	}
	if strings.Contains(rlog.String(), "refused") {
		t.Fatalf("the regional refused a call from an edge with a machine token:\n%s", rlog)
	}

	ec3 := testConfig(t, config.RoleEdge, t.TempDir())
	ec3.Upstream = up
	bare := startNode(t, config.RoleEdge, ec3)
	if code, _ := gradleWith(t, bare, "GET", key2, nil, machine); code != 404 {
		t.Fatalf("read through a regional refusing the token-less edge: %d, want a miss", code)
	}
	const key3 = "00000000000000000000000000000003"
	if code, b := gradleWith(t, bare, "PUT", key3, randomBytes(t, 1000), machine); code != 200 {
		t.Fatalf("local PUT on the token-less edge: %d %q", code, b)
	}
	eventually(t, "the regional to log the refused write-through", func() bool {
		return strings.Contains(rlog.String(), "method=/fabrik.v1.FabrikCache/Put") &&
			strings.Contains(rlog.String(), "code=Unauthenticated")
	})
	if localHas(regional, messages.Ref{Namespace: "gradle", Key: key3}) {
		t.Fatal("the regional stored an upload that carried no token")
	}
	metrics := scrape(t, regional, machine)
	if !strings.Contains(metrics, `fabrik_auth_refused_total{reason="unauthenticated",need="cache:write"}`) {
		t.Errorf("the regional's /metrics does not count the refusals:\n%s", grepLines(metrics, "auth"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}
