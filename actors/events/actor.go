package events

import (
	"encoding/json"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// publisher is the events actor. State it owns: the previous hit and miss
// totals (for the aggregated .hit and .miss messages) and the ticker. The
// NATS connection belongs to the Publisher, which closes it after the actor
// stopped.
type publisher struct {
	p    *Publisher
	opts Options

	lastHits, lastMisses uint64
	lastTick             time.Time
	stop                 chan struct{}
}

// HitMiss is the body of the aggregated fabrik.<node>.hit and .miss
// messages.
type HitMiss struct {
	Node string `json:"node"`
	// Count happened during the last IntervalSeconds; Total since start.
	Count           uint64    `json:"count"`
	Total           uint64    `json:"total"`
	IntervalSeconds float64   `json:"interval_seconds"`
	Time            time.Time `json:"time"`
}

func (a *publisher) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.lastTick = time.Now()
		if a.opts.Metrics != nil {
			a.lastHits, a.lastMisses = a.opts.Metrics.HitsMisses()
		}
		a.startTicker(ctx)
	case *actor.Stopping, *actor.Restarting:
		if a.stop != nil {
			close(a.stop)
			a.stop = nil
		}
	case *publish:
		a.p.pending.Add(-1)
		a.send(m.subject, m.payload)
	case *tick:
		a.periodic()
	}
}

func (a *publisher) send(subject string, payload any) {
	b, err := json.Marshal(payload)
	if err != nil {
		a.p.log.Error("events: encode", "subject", subject, "err", err)
		return
	}
	if err := a.p.conn.Publish(subject, b); err != nil {
		// Closed or reconnect buffer full: the event is lost, and counted.
		a.p.dropped()
	}
}

// periodic publishes stats and the hits and misses since the last tick.
func (a *publisher) periodic() {
	now := time.Now()
	interval := now.Sub(a.lastTick).Seconds()
	a.lastTick = now
	if a.opts.Stats != nil {
		if st, err := a.opts.Stats(); err != nil {
			a.p.log.Warn("events: collect stats", "err", err)
		} else {
			a.send(a.p.Subject("stats"), st)
		}
	}
	if a.opts.Metrics == nil {
		return
	}
	hits, misses := a.opts.Metrics.HitsMisses()
	if d := hits - a.lastHits; d > 0 {
		a.send(a.p.Subject("hit"), HitMiss{Node: a.p.node, Count: d, Total: hits, IntervalSeconds: interval, Time: now.UTC()})
	}
	if d := misses - a.lastMisses; d > 0 {
		a.send(a.p.Subject("miss"), HitMiss{Node: a.p.node, Count: d, Total: misses, IntervalSeconds: interval, Time: now.UTC()})
	}
	a.lastHits, a.lastMisses = hits, misses
}

// startTicker sends ticks into the mailbox so periodic messages are
// serialized with every other publish.
func (a *publisher) startTicker(ctx actor.Context) {
	if a.opts.StatsEvery < 0 {
		return
	}
	a.stop = make(chan struct{})
	stop, self, root := a.stop, ctx.Self(), ctx.ActorSystem().Root
	go func() {
		t := time.NewTicker(a.opts.StatsEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				root.Send(self, &tick{})
			}
		}
	}()
}

func splitHostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, err
	}
	return host, n, nil
}
