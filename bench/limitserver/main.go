// Command limitserver is the in-memory limit of `make bench`: a plain
// net/http server that keeps every body in a map, with no hashing, no index
// and no disk. Whatever the node does on top of receiving and sending bytes
// is the gap between its figures and this server's, measured in the same
// run on the same cores, so the bench prints every figure as a ratio to it.
//
// It answers the Gradle adapter's shapes that loadgen sends: PUT, GET and
// HEAD on any path (loadgen uses /cache/{key}), and POST /missing with one
// key per line, answering the keys it does not hold (a FindMissingBlobs
// with one pass over the map).
//
// With -dir it is the limit of a cache that keeps what it is sent: each PUT
// body is written to a file of its own in -dir and SHA-256 hashed as it
// arrives (what a content-addressed cache cannot skip), and a GET sends the
// file with sendfile. Against a server that stores on disk (the node,
// turborepo-remote-cache) it shows what the disk and the hash cost on this
// machine, which no server of that kind can go below.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync"
)

type server struct {
	mu    sync.RWMutex
	blobs map[string][]byte
	dir   string
	files map[string]string // -dir: path -> file
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/missing":
		s.missing(w, r)
	case s.dir != "":
		s.disk(w, r)
	case r.Method == http.MethodPut:
		body, err := readBody(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.blobs[r.URL.Path] = body
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		s.mu.RLock()
		body, ok := s.blobs[r.URL.Path]
		s.mu.RUnlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		header(w, int64(len(body)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// header answers 200 for a body of n bytes.
func header(w http.ResponseWriter, n int64) {
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
}

// readBody reads a request body into one buffer of its Content-Length
// when the client sent one (loadgen always does): io.ReadAll's doubling
// copies a 64 MiB body about a dozen times, which made PUTs of large
// bodies slower here than on a server that writes them to disk.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength < 0 {
		return io.ReadAll(r.Body)
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return nil, fmt.Errorf("read %d-byte body: %w", r.ContentLength, err)
	}
	return body, nil
}

// disk serves PUT and GET from files in s.dir.
func (s *server) disk(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPut:
		f, err := os.CreateTemp(s.dir, "blob-*")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h := sha256.New()
		buf := make([]byte, 64<<10)
		_, err = io.CopyBuffer(io.MultiWriter(f, h), r.Body, buf)
		h.Sum(nil)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.files[r.URL.Path] = f.Name()
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	case http.MethodGet, http.MethodHead:
		s.mu.RLock()
		name, ok := s.files[r.URL.Path]
		s.mu.RUnlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		header(w, fi.Size())
		if r.Method == http.MethodGet {
			// sendfile (the ResponseWriter's ReadFrom): on this machine
			// half the CPU of reading the file and writing it.
			_, _ = io.Copy(w, f)
		}
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// missing answers the lines of the request body that name no stored path.
func (s *server) missing(w http.ResponseWriter, r *http.Request) {
	var out bytes.Buffer
	sc := bufio.NewScanner(r.Body)
	s.mu.RLock()
	for sc.Scan() {
		if _, ok := s.blobs[sc.Text()]; !ok {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
		}
	}
	s.mu.RUnlock()
	_, _ = w.Write(out.Bytes())
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	dir := flag.String("dir", "", "keep bodies in files here, hashed (the on-disk limit); default: in memory")
	flag.Parse()
	s := &server{blobs: map[string][]byte{}, dir: *dir, files: map[string]string{}}
	srv := &http.Server{Addr: *addr, Handler: s}
	fmt.Printf("[limitserver] listening on %s\n", *addr)
	log.Fatal(srv.ListenAndServe())
}
