package gocacheprog

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tuist/fabrik-node/adapters/gocache"
)

// Edge is the helper's client of an edge's /gocache/ endpoint. The build
// must never wait on it for long, nor fail because of it: reads have short
// timeouts and any failure is a miss; after breakerFailures failures in a
// row the edge is skipped for breakerCooldown (every get a miss at once,
// every put kept local), then tried again.
type Edge struct {
	base   string
	token  string
	client *http.Client
	// getTimeout bounds a get's wait for the edge's answer (headers).
	getTimeout time.Duration

	// failures counts consecutive failures; openUntil (unix ns) is when a
	// tripped breaker lets requests through again.
	failures  atomic.Int32
	openUntil atomic.Int64
	// onDown is called once per trip with the failure that tripped it.
	onDown func(error)
}

const (
	breakerFailures = 3
	breakerCooldown = 30 * time.Second
)

// EdgeOptions configure NewEdge.
type EdgeOptions struct {
	// URL is the edge's HTTP base URL, e.g. http://127.0.0.1:5071.
	URL string
	// Token, when set, is sent as a Bearer token (the edge's guard checks it
	// like any other adapter's).
	Token string
	// GetTimeout bounds the wait for a get's answer (default 1 s). A body
	// then has bodyTimeout to arrive.
	GetTimeout time.Duration
	// OnDown is told when the edge starts being skipped.
	OnDown func(error)
}

// bodyTimeout bounds a whole download or upload of one output.
const bodyTimeout = 60 * time.Second

// NewEdge returns a client of the edge at opts.URL.
func NewEdge(opts EdgeOptions) *Edge {
	if opts.GetTimeout <= 0 {
		opts.GetTimeout = time.Second
	}
	tr := &http.Transport{
		Proxy:                 nil, // loopback and LAN edges; a proxy would only add a hop
		DialContext:           (&net.Dialer{Timeout: opts.GetTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: opts.GetTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &Edge{
		base:       strings.TrimRight(opts.URL, "/") + "/gocache/",
		token:      opts.Token,
		client:     &http.Client{Transport: tr},
		getTimeout: opts.GetTimeout,
		onDown:     opts.OnDown,
	}
}

// errSkipped is a request not sent because the breaker is open.
var errSkipped = errors.New("edge skipped after repeated failures")

// available reports whether requests may go to the edge now.
func (e *Edge) available() bool {
	until := e.openUntil.Load()
	return until == 0 || time.Now().UnixNano() >= until
}

// result feeds the breaker: err nil is a success.
func (e *Edge) result(err error) {
	if err == nil {
		e.failures.Store(0)
		e.openUntil.Store(0)
		return
	}
	if n := e.failures.Add(1); n >= breakerFailures {
		was := e.openUntil.Swap(time.Now().Add(breakerCooldown).UnixNano())
		if was == 0 && e.onDown != nil {
			e.onDown(err)
		}
	}
}

func (e *Edge) request(ctx context.Context, method string, action []byte, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.base+hex.EncodeToString(action), body)
	if err != nil {
		return nil, err
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+token(e.token))
	}
	return req, nil
}

// token trims what a token file may end with.
func token(s string) string { return strings.TrimSpace(s) }

// Fetch asks the edge for action and, on a hit, hands the body to store
// with the entry's output ID, size and put time. A miss, a failure, or a
// body store rejects are all (false, err-or-nil): the caller answers a miss.
func (e *Edge) Fetch(ctx context.Context, action []byte, store func(outputID []byte, size int64, when time.Time, body io.Reader) error) (bool, error) {
	if !e.available() {
		return false, errSkipped
	}
	if len(action) != 32 {
		return false, fmt.Errorf("action ID of %d bytes; the edge keys SHA-256 IDs", len(action))
	}
	ctx, cancel := context.WithTimeout(ctx, bodyTimeout)
	defer cancel()
	req, err := e.request(ctx, http.MethodGet, action, nil)
	if err != nil {
		return false, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.result(err)
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		e.result(nil)
		return false, nil
	case resp.StatusCode != http.StatusOK:
		// Refusals (401, 403) and errors are misses too; a node that keeps
		// refusing is skipped like a dead one.
		err := fmt.Errorf("edge answered %s", resp.Status)
		e.result(err)
		return false, err
	}
	outHex, ok := gocache.ParseID(resp.Header.Get(gocache.HeaderOutputID))
	if !ok || resp.ContentLength < 0 {
		err := fmt.Errorf("edge hit without %s or Content-Length", gocache.HeaderOutputID)
		e.result(err)
		return false, err
	}
	out, _ := hex.DecodeString(outHex)
	when, err := time.Parse(time.RFC3339Nano, resp.Header.Get(gocache.HeaderTime))
	if err != nil {
		when = time.Now()
	}
	// store verifies size and SHA-256 against the output ID, so a body cut
	// short or corrupted never becomes a hit.
	if err := store(out, resp.ContentLength, when, resp.Body); err != nil {
		e.result(err)
		return false, err
	}
	e.result(nil)
	return true, nil
}

// Upload sends one local entry to the edge.
func (e *Edge) Upload(ctx context.Context, job upload) error {
	if !e.available() {
		return errSkipped
	}
	if len(job.action) != 32 {
		return fmt.Errorf("action ID of %d bytes; the edge keys SHA-256 IDs", len(job.action))
	}
	f, err := os.Open(job.path)
	if err != nil {
		return err // evicted meanwhile: nothing to send
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, bodyTimeout)
	defer cancel()
	req, err := e.request(ctx, http.MethodPut, job.action, f)
	if err != nil {
		return err
	}
	req.ContentLength = job.size
	if job.size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(gocache.HeaderOutputID, hex.EncodeToString(job.outputID[:]))
	req.Header.Set(gocache.HeaderTime, job.when.UTC().Format(time.RFC3339Nano))
	resp, err := e.client.Do(req)
	if err != nil {
		e.result(err)
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		err := fmt.Errorf("edge answered %s", resp.Status)
		// A full or refusing edge is not a dead one for reads, but 5xx is.
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusInsufficientStorage {
			e.result(err)
		}
		return err
	}
	e.result(nil)
	return nil
}

// upload is one entry waiting to go to the edge.
type upload struct {
	action   []byte
	outputID [32]byte
	size     int64
	when     time.Time
	path     string
}

// Uploader sends puts to the edge in the background: a bounded queue and a
// few workers. Overflow policy: when the queue is full the new put is
// dropped (it stays in the local directory) and counted; the build never
// waits on the network.
type Uploader struct {
	edge  *Edge
	queue chan upload
	wg    sync.WaitGroup
	// ctx is cancelled when a flush runs out of time, abandoning uploads.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards closed: no Enqueue may send on the queue once Flush closed it.
	mu     sync.RWMutex
	closed bool
	// Counters for the close-time summary and tests.
	Queued, Sent, Dropped, Failed atomic.Int64
}

// NewUploader starts workers uploading to edge from a queue of queueSize.
func NewUploader(edge *Edge, queueSize, workers int) *Uploader {
	ctx, cancel := context.WithCancel(context.Background())
	u := &Uploader{edge: edge, queue: make(chan upload, queueSize), ctx: ctx, cancel: cancel}
	for range workers {
		u.wg.Add(1)
		go u.work()
	}
	return u
}

// Enqueue queues one upload, or drops it when the queue is full or the
// edge is being skipped.
func (u *Uploader) Enqueue(job upload) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed || !u.edge.available() {
		u.Dropped.Add(1)
		return
	}
	select {
	case u.queue <- job:
		u.Queued.Add(1)
	default:
		u.Dropped.Add(1)
	}
}

func (u *Uploader) work() {
	defer u.wg.Done()
	for job := range u.queue {
		if u.ctx.Err() != nil {
			u.Dropped.Add(1)
			continue
		}
		if err := u.edge.Upload(u.ctx, job); errors.Is(err, errSkipped) {
			u.Dropped.Add(1)
		} else if err != nil {
			u.Failed.Add(1)
		} else {
			u.Sent.Add(1)
		}
	}
}

// Flush stops taking uploads and waits up to timeout for the queued ones;
// what is still pending then is abandoned (it stays local). It reports
// whether everything queued was attempted in time.
func (u *Uploader) Flush(timeout time.Duration) bool {
	u.mu.Lock()
	if !u.closed {
		u.closed = true
		close(u.queue)
	}
	u.mu.Unlock()
	done := make(chan struct{})
	go func() { u.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		u.cancel()
		<-done
		return false
	}
}

// Pending is the number of uploads queued and not yet taken by a worker.
func (u *Uploader) Pending() int { return len(u.queue) }
