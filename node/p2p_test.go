package node

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tuist/fabrik-node/config"
)

// p2pPair starts edge A (holding the artifacts) and edge B, which knows A
// as a static peer (mDNS off: the namespace e2e test covers discovery).
func p2pPair(t *testing.T, consentA, secretB string) (a, b *Node) {
	t.Helper()
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	off := false
	ca := testConfig(t, config.RoleEdge, t.TempDir())
	ca.P2P = config.P2PConfig{Enabled: true, Bind: "127.0.0.1:0", Secret: "team-secret-0123456789", ConsentMode: consentA,
		Advertise: &off, Discovery: &off, RequestTimeout: config.Duration(2 * time.Second)}
	a = startNode(t, config.RoleEdge, ca)
	cb := testConfig(t, config.RoleEdge, t.TempDir())
	cb.P2P = ca.P2P
	cb.P2P.Secret = secretB
	cb.P2P.Peers = []string{a.Addr(p2pListener)}
	b = startNode(t, config.RoleEdge, cb)
	return a, b
}

func TestP2PHitFromPeer(t *testing.T) {
	a, b := p2pPair(t, "auto-approve", "team-secret-0123456789")
	body := randomBytes(t, 4096)
	gradlePut(t, a, "0123456789abcdef0123456789abcd01", body)
	if got := gradleGet(t, b, "0123456789abcdef0123456789abcd01"); string(got) != string(body) {
		t.Fatalf("B read %d bytes, want A's %d from the peer", len(got), len(body))
	}
	if s := b.p2p.stats.Snapshot(); s.Hits != 1 || s.BytesIn != 4096 {
		t.Fatalf("B's p2p stats %+v, want 1 hit of 4096 bytes", s)
	}
	resp, err := http.Get("http://" + b.Addr("api") + "/api/v1/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		P2P struct {
			Hits  uint64 `json:"hits"`
			Peers int    `json:"peers"`
		} `json:"p2p"`
	}
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.P2P.Hits != 1 || st.P2P.Peers != 1 {
		t.Fatalf("/api/v1/stats p2p = %+v, want 1 hit and 1 peer", st.P2P)
	}
	resp, err = http.Get("http://" + b.Addr("api") + "/api/v1/stats/detail")
	if err != nil {
		t.Fatal(err)
	}
	var detail struct {
		P2P *struct {
			Peers []string `json:"peers"`
		} `json:"p2p"`
	}
	json.NewDecoder(resp.Body).Decode(&detail)
	resp.Body.Close()
	if detail.P2P == nil || len(detail.P2P.Peers) != 1 || detail.P2P.Peers[0] != a.Addr(p2pListener) {
		t.Fatalf("/api/v1/stats/detail p2p = %+v, want A", detail.P2P)
	}
	resp, err = http.Get("http://" + b.Addr("api") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	prom, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(prom), "fabrik_p2p_hits_total 1") || !strings.Contains(string(prom), "fabrik_p2p_hit_seconds_bucket") {
		t.Fatalf("/metrics lacks the p2p figures:\n%s", prom)
	}
	// Written back locally: A's copy is no longer needed.
	eventually(t, "write-back of the peer hit", func() bool {
		return len(b.p2p.set.Peers()) == 1 && b.store != nil && gradleGetQuiet(b, "0123456789abcdef0123456789abcd01")
	})
}

func gradleGetQuiet(n *Node, key string) bool {
	resp, err := http.Get("http://" + n.Addr("http") + "/cache/" + key)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func TestP2PWrongSecretGetsNothing(t *testing.T) {
	a, b := p2pPair(t, "auto-approve", "another-secret-9876543210")
	gradlePut(t, a, "0123456789abcdef0123456789abcd02", randomBytes(t, 100))
	if got := gradleGet(t, b, "0123456789abcdef0123456789abcd02"); got != nil {
		t.Fatal("a peer with the wrong secret read A's artifact")
	}
	if a.p2p.stats.Snapshot().Refused == 0 {
		t.Fatal("A did not count the refused request")
	}
}

func TestP2PConsentDisabledGetsNothing(t *testing.T) {
	a, b := p2pPair(t, "disabled", "team-secret-0123456789")
	gradlePut(t, a, "0123456789abcdef0123456789abcd03", randomBytes(t, 100))
	if got := gradleGet(t, b, "0123456789abcdef0123456789abcd03"); got != nil {
		t.Fatal("consent_mode = disabled served a peer")
	}
}

// notify-once: a miss until A's user approves B through the API, a hit
// after; a denied peer gets nothing.
func TestP2PConsentApproveThenDeny(t *testing.T) {
	a, b := p2pPair(t, "notify-once", "team-secret-0123456789")
	gradlePut(t, a, "0123456789abcdef0123456789abcd04", randomBytes(t, 100))
	if got := gradleGet(t, b, "0123456789abcdef0123456789abcd04"); got != nil {
		t.Fatal("served before consent")
	}
	post := func(path string) {
		resp, err := http.Post("http://"+a.Addr("api")+path+"?peer="+b.p2p.machineID, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	post("/api/v1/p2p/approve")
	if got := gradleGet(t, b, "0123456789abcdef0123456789abcd04"); got == nil {
		t.Fatal("approved peer missed")
	}
	gradlePut(t, a, "0123456789abcdef0123456789abcd05", randomBytes(t, 100))
	post("/api/v1/p2p/deny")
	if got := gradleGet(t, b, "0123456789abcdef0123456789abcd05"); got != nil {
		t.Fatal("denied peer was served")
	}
}
