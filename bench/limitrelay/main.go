// Command limitrelay is the limit of a cache miss through one layer in
// `make bench`: the least a caching layer in front of S3 can do. It serves
// GET /proxy/{key} by streaming S3 object {key} to the client and nothing
// else, and GET /store/{key} the same way while also keeping the bytes, as
// every fabrik-node layer must: a goroutine beside the response writes them
// to a local file and SHA-256 hashes them (the node verifies content before
// it commits it), fed through a bounded queue, so the client waits for the
// disk only when the queue is full. No index, no actors, no protocol of its
// own: plain net/http and the AWS SDK's GetObject with the tier's checksum
// settings.
//
// A node's miss is compared with /store (the same work, done by the least
// code) and with a direct GetObject (the floor); /proxy shows what the
// copy to disk and the hash cost on this machine. The copies stay in -dir
// (as a node's would) until the bench removes it: on a VM whose memory is
// touched for the first time, page cache for new data costs far more than
// recycled pages, and a copy that was deleted at once would be cheaper
// than the node's, which keeps its bytes.
package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"hash"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

type relay struct {
	s3     *awss3.Client
	bucket string
	dir    string
}

func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	mode, key, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	if req.Method != http.MethodGet || !ok || (mode != "proxy" && mode != "store") {
		http.Error(w, "GET /proxy/{key} or /store/{key}", http.StatusBadRequest)
		return
	}
	out, err := r.s3.GetObject(req.Context(), &awss3.GetObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(key)})
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer out.Body.Close()
	var body io.Reader = out.Body
	if mode == "store" {
		k, err := r.keep()
		if err != nil {
			http.Error(w, fmt.Sprintf("keep %s: %v", key, err), http.StatusInternalServerError)
			return
		}
		defer k.close()
		body = io.TeeReader(out.Body, k)
	}
	w.Header().Set("Content-Length", strconv.FormatInt(aws.ToInt64(out.ContentLength), 10))
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(w, body, buf); err != nil {
		log.Printf("relay %s: %v", key, err)
	}
}

// keeper writes and hashes what the client is sent, in its own goroutine;
// its file stays.
type keeper struct {
	f    *os.File
	h    hash.Hash
	q    chan []byte
	free chan []byte
	done chan struct{}
}

const pieces, pieceSize = 8, 256 << 10

func (r *relay) keep() (*keeper, error) {
	f, err := os.CreateTemp(r.dir, "relay-*")
	if err != nil {
		return nil, err
	}
	k := &keeper{f: f, h: sha256.New(), q: make(chan []byte, pieces), free: make(chan []byte, pieces), done: make(chan struct{})}
	for range pieces {
		k.free <- make([]byte, 0, pieceSize)
	}
	go func() {
		defer close(k.done)
		logged := false
		for p := range k.q {
			if _, err := k.f.Write(p); err != nil && !logged {
				logged = true
				log.Printf("write %s: %v", k.f.Name(), err)
			}
			k.h.Write(p)
			k.free <- p[:0]
		}
	}()
	return k, nil
}

// Write copies p into free pieces and queues them; it blocks only when all
// pieces wait for the disk.
func (k *keeper) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		b := <-k.free
		m := min(len(p), cap(b))
		b = append(b, p[:m]...)
		k.q <- b
		p = p[m:]
	}
	return n, nil
}

func (k *keeper) close() {
	close(k.q)
	<-k.done
	k.h.Sum(nil) // the digest a node would verify; the work is what counts here
	k.f.Close()
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	endpoint := flag.String("s3-endpoint", "", "S3-compatible endpoint")
	bucket := flag.String("bucket", "bench", "bucket")
	dir := flag.String("dir", os.TempDir(), "where /store writes its copies (left there)")
	flag.Parse()
	client := awss3.New(awss3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(*endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	if _, err := client.ListBuckets(context.Background(), &awss3.ListBucketsInput{}); err != nil {
		log.Fatalf("limitrelay: S3 at %s: %v", *endpoint, err)
	}
	srv := &http.Server{Addr: *addr, Handler: &relay{s3: client, bucket: *bucket, dir: *dir}}
	fmt.Printf("[limitrelay] listening on %s\n", *addr)
	log.Fatal(srv.ListenAndServe())
}
