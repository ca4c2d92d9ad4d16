package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/zeroconf/v2"
)

// Service is the DNS-SD service type every Fabrik edge advertises.
const Service = "_fabrik._tcp"

// browseEvery is how often a fresh browse is started: zeroconf reports an
// instance once per browse, so a new browse is what refreshes a peer's
// last-seen time (and a peer missing from several browses expires).
const browseEvery = 10 * time.Second

// Discovery advertises this node and browses for others on the LAN.
type Discovery struct {
	Set       *Set
	MachineID string
	Version   string
	// Host is the advertised host name: distinct per node, because several
	// nodes on one machine (or in namespaces of one kernel) share its name.
	Host   string
	Port   int
	IPs    []string // advertised addresses (every non-loopback IPv4 when empty)
	Logger *slog.Logger

	server *zeroconf.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Instance is this node's DNS-SD instance name.
func (d *Discovery) Instance() string { return "fabrik-" + d.Host }

// Advertise registers the service; Stop withdraws it (an mDNS goodbye).
func (d *Discovery) Advertise() error {
	ips := d.IPs
	if len(ips) == 0 {
		ips = localIPv4s()
	}
	txt := []string{"machine_id=" + d.MachineID, "version=" + d.Version}
	srv, err := zeroconf.RegisterProxy(d.Instance(), Service, "local.", d.Port, d.Host, ips, txt, nil)
	if err != nil {
		return fmt.Errorf("p2p advertise: %w", err)
	}
	d.server = srv
	return nil
}

// Browse starts browsing in the background until Stop.
func (d *Discovery) Browse() {
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done = cancel, make(chan struct{})
	go func() {
		defer close(d.done)
		for ctx.Err() == nil {
			round, stop := context.WithTimeout(ctx, browseEvery)
			entries := make(chan *zeroconf.ServiceEntry, 16)
			go func() {
				if err := zeroconf.Browse(round, Service, "local.", entries); err != nil {
					d.Logger.Debug("p2p browse failed", "err", err)
				}
			}()
			d.consume(round, entries)
			stop()
			d.Set.Expire(time.Now())
		}
	}()
}

func (d *Discovery) consume(ctx context.Context, entries <-chan *zeroconf.ServiceEntry) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-entries:
			if !ok {
				return
			}
			d.see(e)
		}
	}
}

func (d *Discovery) see(e *zeroconf.ServiceEntry) {
	txt := map[string]string{}
	for _, kv := range e.Text {
		if k, v, ok := strings.Cut(kv, "="); ok {
			txt[k] = v
		}
	}
	if txt["machine_id"] == d.MachineID || len(e.AddrIPv4) == 0 {
		return // ourselves, or nothing to dial
	}
	addr := net.JoinHostPort(e.AddrIPv4[0].String(), strconv.Itoa(e.Port))
	if !e.Expiry.IsZero() && time.Until(e.Expiry) <= 0 {
		d.Set.Withdraw(addr)
		return
	}
	d.Set.See(PeerInfo{Addr: addr, Instance: e.Instance, MachineID: txt["machine_id"], Version: txt["version"]})
}

// Stop withdraws the advertisement and stops browsing.
func (d *Discovery) Stop() {
	if d.server != nil {
		d.server.Shutdown()
		d.server = nil
	}
	if d.cancel != nil {
		d.cancel()
		<-d.done
		d.cancel = nil
	}
}

func localIPv4s() []string {
	var out []string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			out = append(out, n.IP.String())
		}
	}
	return out
}
