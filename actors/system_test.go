package actors_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/tuist/fabrik-node/actors"
)

type crashy struct{ starts *atomic.Int32 }

func (c *crashy) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.starts.Add(1)
	case string:
		if m == "crash" {
			panic("boom")
		}
		ctx.Respond("echo " + m)
	}
}

// A crashing actor is restarted by its supervisor and keeps serving.
func TestSupervisorRestartsCrashedActor(t *testing.T) {
	sys := actors.NewSystem()
	defer sys.Shutdown()
	var starts atomic.Int32
	ref, err := sys.Spawn("crashy", func() actor.Actor { return &crashy{starts: &starts} })
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Stop(ref)
	ref.Tell("crash")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := ref.Ask(ctx, "hi")
	if err != nil || res != "echo hi" {
		t.Fatalf("after a crash: %v, %v", res, err)
	}
	if n := starts.Load(); n != 2 {
		t.Fatalf("Started ran %d times, want 2 (start + restart)", n)
	}
}

func TestAskHonoursDeadline(t *testing.T) {
	sys := actors.NewSystem()
	defer sys.Shutdown()
	ref, _ := sys.Spawn("silent", func() actor.Actor { return actor.ReceiveFunc(func(actor.Context) {}) })
	defer sys.Stop(ref)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := ref.Ask(ctx, "hello?"); err == nil {
		t.Fatal("ask to a silent actor succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("ask took %v, want about 100ms", d)
	}
}

type wantedResult struct{ Err error }

// AskFor checks the reply's type once: a reply of another type is
// ErrBadReply naming both, never a panic in the caller.
func TestAskForChecksReplyType(t *testing.T) {
	sys := actors.NewSystem()
	defer sys.Shutdown()
	ref, _ := sys.Spawn("echo", func() actor.Actor { return &crashy{starts: &atomic.Int32{}} })
	defer sys.Stop(ref)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s, err := actors.AskFor[string](ctx, ref, "hi"); err != nil || s != "echo hi" {
		t.Fatalf("AskFor[string] = %q, %v", s, err)
	}
	_, err := actors.AskFor[*wantedResult](ctx, ref, "hi")
	if !errors.Is(err, actors.ErrBadReply) || !strings.Contains(err.Error(), "string") {
		t.Fatalf("mistyped reply: %v, want ErrBadReply naming string", err)
	}
}
