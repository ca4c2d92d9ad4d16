// Package events publishes what happens in a node on NATS, for whoever
// wants to watch a fleet live (the pull APIs stay the contract with Tuist;
// this is optional). Subjects, with <node> from [events] node_name:
//
//	fabrik.<node>.evict  one message per evicted artifact (and one per admin clear)
//	fabrik.<node>.stats  the /api/v1/stats body, every StatsEvery
//	fabrik.<node>.hit    hits since the previous stats tick, aggregated
//	fabrik.<node>.miss   misses since the previous stats tick, aggregated
//
// Hits and misses are aggregated, not sent one by one: a busy node serves
// thousands a second, a per-request message would put NATS on the request
// path's budget, and what a watcher needs is the rate.
//
// Overload policy: a node never blocks or fails because NATS is slow or
// down. Publishing goes through a bounded buffer (the actor's mailbox, with
// its depth counted); when it is full the event is dropped and counted in
// fabrik_events_dropped_total. Events nats.go cannot buffer while
// reconnecting are dropped and counted the same way.
package events

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tuist/fabrik-node/actors"
	"github.com/tuist/fabrik-node/metrics"
)

// Options configure the publisher.
type Options struct {
	// URL is "embedded" (an in-process NATS server without a listening
	// port), "embedded:<host:port>" (the same, also listening there for
	// outside subscribers) or a nats:// URL of a real server.
	URL string
	// Node is the subject's node segment (default: the host name).
	Node string
	// Buffer bounds events waiting to be published (default 4096).
	Buffer int
	// StatsEvery is the period of stats, hit and miss messages (default
	// 10s; negative turns them off).
	StatsEvery time.Duration
	// Stats returns the body of a stats message (nil: no stats messages).
	Stats func() (any, error)
	// Metrics gives hit and miss totals and receives
	// fabrik_events_dropped_total.
	Metrics *metrics.Set
	Logger  *slog.Logger
}

// Publisher is the node's handle on the events actor. Its methods never
// block and are safe from any goroutine, including store callbacks.
type Publisher struct {
	sys     *actors.System
	ref     actors.Ref
	node    string
	buffer  int64
	pending atomic.Int64 // events told to the actor and not yet taken
	dropped func()
	stopped atomic.Bool

	conn *nats.Conn
	srv  *server.Server // nil unless embedded
	log  *slog.Logger
}

// publish is one event on its way to NATS; the payload is encoded by the
// actor, off the caller's path.
type publish struct {
	subject string
	payload any
}

// tick asks the actor for the periodic stats, hit and miss messages.
type tick struct{}

// Start connects to NATS (starting the embedded server when asked) and
// spawns the events actor. Only a malformed URL or an embedded server that
// cannot start is an error; an external server that is down is retried in
// the background while events are dropped and counted.
func Start(sys *actors.System, opts Options) (*Publisher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 4096
	}
	if opts.StatsEvery == 0 {
		opts.StatsEvery = 10 * time.Second
	}
	if opts.Node == "" {
		opts.Node, _ = os.Hostname()
	}
	p := &Publisher{sys: sys, node: subjectToken(opts.Node), buffer: int64(opts.Buffer), log: opts.Logger, dropped: func() {}}
	if opts.Metrics != nil {
		c := opts.Metrics.Counter("fabrik_events_dropped_total")
		p.dropped = c.Inc
	}
	if err := p.connect(opts.URL); err != nil {
		return nil, err
	}
	ref, err := sys.Spawn("events", func() actor.Actor { return &publisher{p: p, opts: opts} })
	if err != nil {
		p.close()
		return nil, err
	}
	p.ref = ref
	opts.Logger.Info("events on NATS", "url", opts.URL, "subjects", "fabrik."+p.node+".>")
	return p, nil
}

func (p *Publisher) connect(url string) error {
	name := nats.Name("fabrik-node " + p.node)
	// nats.go's own reconnect buffer is the second bound: what does not fit
	// while the server is away is dropped (and counted) at Publish.
	common := []nats.Option{name, nats.ReconnectBufSize(1 << 20), nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second), nats.FlusherTimeout(2 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				p.log.Warn("events: NATS disconnected, dropping events until it is back", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { p.log.Info("events: NATS reconnected", "url", c.ConnectedUrl()) }),
	}
	switch {
	case url == "embedded" || strings.HasPrefix(url, "embedded:"):
		srv, err := startEmbedded(strings.TrimPrefix(strings.TrimPrefix(url, "embedded"), ":"), p.node)
		if err != nil {
			return err
		}
		p.srv = srv
		conn, err := nats.Connect("", append(common, nats.InProcessServer(srv))...)
		if err != nil {
			srv.Shutdown()
			return fmt.Errorf("events: connect to the embedded NATS server: %w", err)
		}
		p.conn = conn
	case strings.HasPrefix(url, "nats://") || strings.HasPrefix(url, "tls://"):
		conn, err := nats.Connect(url, append(common, nats.RetryOnFailedConnect(true))...)
		if err != nil {
			return fmt.Errorf("events: connect to %s: %w", url, err)
		}
		p.conn = conn
	default:
		return fmt.Errorf("events: nats_url %q: want \"embedded\", \"embedded:host:port\" or nats://host:port", url)
	}
	return nil
}

// startEmbedded runs a NATS server inside the node. Without listen it opens
// no port at all: the node's own publisher and in-process subscribers
// (Publisher.Server) reach it through net.Pipe.
func startEmbedded(listen, node string) (*server.Server, error) {
	o := &server.Options{ServerName: "fabrik-" + node, DontListen: true, NoLog: true, NoSigs: true}
	if listen != "" {
		host, port, err := splitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("events: embedded NATS listen address %q: %w", listen, err)
		}
		o.DontListen, o.Host, o.Port = false, host, port
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return nil, fmt.Errorf("events: embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(5 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("events: embedded NATS server not ready after 5s")
	}
	return srv, nil
}

// Subject is fabrik.<node>.<kind>.
func (p *Publisher) Subject(kind string) string { return "fabrik." + p.node + "." + kind }

// Server is the embedded NATS server (nil when connected to an external
// one); in-process subscribers connect with nats.InProcessServer(Server()).
func (p *Publisher) Server() *server.Server { return p.srv }

// Publish queues payload (encoded as JSON) for fabrik.<node>.<kind>, or
// drops and counts it when the buffer is full.
func (p *Publisher) Publish(kind string, payload any) {
	if p == nil || p.stopped.Load() {
		return
	}
	if p.pending.Add(1) > p.buffer {
		p.pending.Add(-1)
		p.dropped()
		return
	}
	p.ref.Tell(&publish{subject: p.Subject(kind), payload: payload})
}

// Evict is the body of a fabrik.<node>.evict message.
type Evict struct {
	Node      string    `json:"node"`
	Hash      string    `json:"hash,omitempty"`
	SizeBytes int64     `json:"size_bytes"`
	Objects   int64     `json:"objects,omitempty"`
	Reason    string    `json:"reason"`
	Time      time.Time `json:"time"`
}

// Evicted publishes the eviction of one artifact.
func (p *Publisher) Evicted(hash string, size int64, reason string) {
	if p == nil {
		return
	}
	p.Publish("evict", Evict{Node: p.node, Hash: hash, SizeBytes: size, Reason: reason, Time: time.Now().UTC()})
}

// Cleared publishes one event for a whole-cache clear (the store does not
// report cleared artifacts one by one).
func (p *Publisher) Cleared(objects, bytes int64) {
	if p == nil {
		return
	}
	p.Publish("evict", Evict{Node: p.node, Objects: objects, SizeBytes: bytes, Reason: "clear", Time: time.Now().UTC()})
}

// Stop stops the actor, flushes what NATS accepted (for at most a second)
// and shuts the embedded server down.
func (p *Publisher) Stop() {
	if p == nil || p.stopped.Swap(true) {
		return
	}
	p.sys.Stop(p.ref)
	p.close()
}

func (p *Publisher) close() {
	if p.conn != nil {
		_ = p.conn.FlushTimeout(time.Second)
		p.conn.Close()
	}
	if p.srv != nil {
		p.srv.Shutdown()
		p.srv.WaitForShutdown()
	}
}

// subjectToken makes a node name safe as one subject token: dots would
// split it, spaces and wildcards would break subscriptions.
func subjectToken(s string) string {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\n', '\r':
			return '_'
		}
		return r
	}, s)
	if s == "" {
		return "node"
	}
	return s
}
