package p2p

import (
	"errors"
	"testing"
	"time"
)

func TestVerifierRefusesBadMACStaleAndReplay(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	v := NewVerifier([]byte("team-secret-0123456789"), clock)
	s := Signer{Secret: []byte("team-secret-0123456789"), MachineID: "m1", Now: clock}

	a := s.Sign("gradle/k")
	if err := v.Verify(a, "gradle/k"); err != nil {
		t.Fatalf("fresh request refused: %v", err)
	}
	if err := v.Verify(a, "gradle/k"); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed request: %v, want ErrReplay", err)
	}
	if err := v.Verify(s.Sign("gradle/k"), "gradle/other"); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("request for another subject: %v, want ErrBadMAC", err)
	}
	wrong := Signer{Secret: []byte("wrong-secret-0123456789"), MachineID: "m1", Now: clock}
	if err := v.Verify(wrong.Sign("gradle/k"), "gradle/k"); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("wrong secret: %v, want ErrBadMAC", err)
	}
	b := s.Sign("gradle/k")
	b.MachineId = "m2"
	if err := v.Verify(b, "gradle/k"); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("re-attributed request: %v, want ErrBadMAC", err)
	}
	old := Signer{Secret: s.Secret, MachineID: "m1", Now: func() time.Time { return now.Add(-6 * time.Minute) }}
	if err := v.Verify(old.Sign("gradle/k"), "gradle/k"); !errors.Is(err, ErrStale) {
		t.Fatalf("old request: %v, want ErrStale", err)
	}
}

func TestConsentModes(t *testing.T) {
	dir := t.TempDir()
	c := &Consent{Mode: "notify-once", Dir: dir, Timeout: time.Minute, Notify: func(string, string) {}}
	if d := c.Check("peer", "", ""); d != Pending {
		t.Fatalf("unknown peer: %s, want pending", d)
	}
	if err := c.Decide("peer", true); err != nil {
		t.Fatal(err)
	}
	// A new process reads the persisted decision.
	c2 := &Consent{Mode: "notify-once", Dir: dir, Notify: func(string, string) {}}
	if d := c2.Check("peer", "", ""); d != Approved {
		t.Fatalf("after restart: %s, want approved", d)
	}
	if (&Consent{Mode: "always-allow"}).Check("x", "", "") != Approved {
		t.Fatal("always-allow is auto-approve")
	}
	if (&Consent{Mode: "disabled"}).Check("x", "", "") != Denied {
		t.Fatal("disabled denies")
	}
	same := &Consent{Mode: "notify-once", Dir: t.TempDir(), SameUserApprove: true, LocalUser: "ana", Notify: func(string, string) {}}
	if same.Check("m", "ana", "laptop") != Approved {
		t.Fatal("auto_approve_same_user did not approve the same user")
	}
	if err := c2.Clear(); err != nil || c2.Check("peer", "", "") != Pending {
		t.Fatal("clear did not forget the decision")
	}
}
