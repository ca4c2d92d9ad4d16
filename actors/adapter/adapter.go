// Package adapter is the actor of one HTTP protocol adapter (Gradle, Nx,
// Turborepo): it owns the adapter's presence on a shared HTTP front, mounting
// its route table when it starts and removing it when it stops, so one
// adapter can come and go without the listener or the other adapters
// noticing. Requests themselves run in the HTTP server's goroutines and ask
// the router; they do not pass through this mailbox.
package adapter

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/tuist/fabrik-node/adapters/httpfront"
)

// Mounted asks whether the adapter is mounted. Reply: *MountedResult. The
// node asks it after spawning, so that the listener serves only once every
// adapter's routes are in place.
type Mounted struct{}

// MountedResult answers Mounted. Mounting cannot fail, so Err is always nil
// (it is there because every reply has one, see package messages).
type MountedResult struct {
	Mounted bool
	Err     error
}

// Actor owns one adapter's mount on a front.
type Actor struct {
	name    string
	routes  httpfront.Routes
	front   *httpfront.Front
	mounted bool
}

// New returns a producer for the actor of the named adapter.
func New(name string, routes httpfront.Routes, front *httpfront.Front) func() actor.Actor {
	return func() actor.Actor { return &Actor{name: name, routes: routes, front: front} }
}

// Receive handles lifecycle messages.
func (a *Actor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		a.front.Mount(a.name, a.routes)
		a.mounted = true
	case *actor.Stopping:
		a.front.Unmount(a.name)
		a.mounted = false
	case *Mounted:
		ctx.Respond(&MountedResult{Mounted: a.mounted})
	}
}
