// Command misspath measures what each tier adds to a cache miss: artifacts
// that only S3 holds are read, one at a time, by
//
//	s3-raw    one GetObject of the blob with the raw SDK (the floor)
//	s3-tier   the S3 tier (key entry, then blob)
//	regional  a Fabrik client -> regional (local miss) -> S3
//	edge      Gradle GET -> edge (miss) -> regional (miss) -> S3
//	relay-proxy, relay-store
//	          HTTP GET -> limitrelay -> S3 (-relay): the least a layer can
//	          do, without and with keeping the bytes (a file and SHA-256)
//
// and then again as hits (regional-hit, edge-hit) once write-back stored
// them. Each miss path reads its own freshly seeded keys, so every miss is a
// real one and none reads an object S3 served before (a fair floor). The
// miss paths take turns, one read each per round, so a minute of load on
// the machine falls on all of them alike. -paths runs some of them (a
// profile of one path).
//
//	misspath -s3-endpoint http://127.0.0.1:9000 -bucket bench -prefix tenant-bench/ \
//	  -regional 127.0.0.1:7070 -edge http://127.0.0.1:5071 -sizes 4KiB,1MiB -n 50
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/bench/measure"
	"github.com/tuist/fabrik-node/bench/pattern"
	"github.com/tuist/fabrik-node/messages"
	"github.com/tuist/fabrik-node/tier"
	"github.com/tuist/fabrik-node/tier/fabrik"
	s3tier "github.com/tuist/fabrik-node/tier/s3"
)

type options struct {
	endpoint, bucket, prefix string
	accessKey, secretKey     string
	regional, edge, relay    string
	sizes                    []int64
	n, warm                  int
	run                      uint64
	create                   bool
	paths                    map[string]bool
}

func main() {
	var o options
	var sizes, only string
	flag.StringVar(&o.endpoint, "s3-endpoint", "", "S3-compatible endpoint (MinIO on loopback)")
	flag.StringVar(&o.bucket, "bucket", "bench", "bucket the regional's S3 upstream uses")
	flag.StringVar(&o.prefix, "prefix", "tenant-bench/", "tenant prefix of the regional's S3 upstream")
	flag.StringVar(&o.accessKey, "access-key", os.Getenv("AWS_ACCESS_KEY_ID"), "S3 access key")
	flag.StringVar(&o.secretKey, "secret-key", os.Getenv("AWS_SECRET_ACCESS_KEY"), "S3 secret key")
	flag.StringVar(&o.regional, "regional", "", "regional's Fabrik address host:port")
	flag.StringVar(&o.edge, "edge", "", "edge's Gradle base URL (its upstream is -regional)")
	flag.StringVar(&o.relay, "relay", "", "limitrelay's base URL, for the relay-* paths")
	flag.StringVar(&sizes, "sizes", "4KiB,1MiB", "artifact sizes")
	flag.IntVar(&o.n, "n", 30, "reads per size and path")
	flag.IntVar(&o.warm, "warm", 2, "untimed reads per path first (they open connections)")
	flag.Uint64Var(&o.run, "run", uint64(time.Now().UnixNano()), "run id: keys are derived from it")
	flag.BoolVar(&o.create, "create-bucket", false, "create the bucket first")
	flag.StringVar(&only, "paths", strings.Join(allPaths, ","), "the paths to measure")
	flag.Parse()
	o.paths = map[string]bool{}
	for _, p := range strings.Split(only, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if !slices.Contains(allPaths, p) {
				fail(fmt.Errorf("-paths: unknown path %q (known: %s)", p, strings.Join(allPaths, ",")))
			}
			o.paths[p] = true
		}
	}
	for _, s := range strings.Split(sizes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := pattern.ParseSize(s)
		if err != nil {
			fail(err)
		}
		o.sizes = append(o.sizes, n)
	}
	// -create-bucket -sizes "" only prepares the bucket.
	if o.endpoint == "" || (len(o.sizes) > 0 && (o.regional == "" || o.edge == "")) {
		fail(fmt.Errorf("-s3-endpoint, -regional and -edge are required"))
	}
	if o.relay == "" && (o.paths["relay-proxy"] || o.paths["relay-store"]) {
		if only != "" && only != strings.Join(allPaths, ",") {
			fail(fmt.Errorf("-paths relay-*: -relay is required"))
		}
		delete(o.paths, "relay-proxy")
		delete(o.paths, "relay-store")
	}
	if err := run(context.Background(), o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "misspath:", err)
	os.Exit(1)
}

// allPaths are the paths in the order they run: the hits last, once the
// misses wrote their keys back.
var allPaths = []string{"s3-raw", "s3-tier", "regional", "edge", "relay-proxy", "relay-store", "regional-hit", "edge-hit"}

// paths are the readers under comparison, built once so connections are
// reused as they would be in a long-running node.
type paths struct {
	o      options
	raw    *awss3.Client
	s3     *s3tier.Tier
	fabrik *fabrik.Tier
	http   *http.Client
	buf    []byte
}

func run(ctx context.Context, o options) error {
	p := &paths{o: o, buf: make([]byte, 256<<10), http: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	p.raw = awss3.New(awss3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(o.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(o.accessKey, o.secretKey, ""),
		// Same checksum settings as the tier, so the floor is comparable.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	if o.create {
		if _, err := p.raw.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(o.bucket)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", o.bucket, err)
		}
	}
	if len(o.sizes) == 0 {
		return nil
	}
	var err error
	p.s3, err = s3tier.New(ctx, "bench-s3", s3tier.Options{
		Bucket: o.bucket, Prefix: o.prefix, Endpoint: o.endpoint, AccessKey: o.accessKey, SecretKey: o.secretKey,
	})
	if err != nil {
		return err
	}
	if p.fabrik, err = fabrik.New("bench-regional", "grpc://"+o.regional, fabrik.Options{Timeout: 30 * time.Second}); err != nil {
		return err
	}
	defer p.fabrik.Close()

	fmt.Printf("%-8s %-13s %5s %10s %10s %10s %10s %12s\n", "size", "path", "n", "p50", "p99", "mean", "MB/s@p50", "p50-s3raw")
	for si, size := range o.sizes {
		if err := p.size(ctx, si, size); err != nil {
			return err
		}
	}
	return nil
}

// artifact is one seeded key.
type artifact struct {
	key, hash string
	size      int64
}

// size seeds fresh keys of one size in S3 and reads them through each path.
func (p *paths) size(ctx context.Context, si int, size int64) error {
	warm := p.o.warm
	n := p.o.n + warm
	// One fresh set per miss path; the hits read the sets their misses
	// wrote back.
	sets := map[string][]artifact{}
	next := 0
	for _, name := range allPaths {
		if strings.HasSuffix(name, "-hit") || (!p.o.paths[name] && !p.o.paths[name+"-hit"]) {
			continue
		}
		set := make([]artifact, n)
		for i := range set {
			var err error
			if set[i], err = p.seed(ctx, si, size, next); err != nil {
				return err
			}
			next++
		}
		sets[name], sets[name+"-hit"] = set, set
	}
	var floor time.Duration
	read := map[string]func(context.Context, artifact) (int64, error){
		"s3-raw": p.readRaw, "s3-tier": p.readTier(p.s3), "regional": p.readTier(p.fabrik), "edge": p.readEdge,
		"regional-hit": p.readTier(p.fabrik), "edge-hit": p.readEdge,
		"relay-proxy": p.readRelay("proxy"), "relay-store": p.readRelay("store"),
	}
	type step struct {
		name string
		set  []artifact
		read func(context.Context, artifact) (int64, error)
	}
	var steps []step
	for _, name := range allPaths {
		if p.o.paths[name] {
			steps = append(steps, step{name, sets[name], read[name]})
		}
	}
	// The misses take turns (one read of each per round), then the hits.
	lat := make([][]time.Duration, len(steps))
	measureRounds := func(idx []int) error {
		for i := 0; i < n; i++ {
			for _, j := range idx {
				st, a := steps[j], steps[j].set[i]
				start := time.Now()
				got, err := st.read(ctx, a)
				took := time.Since(start)
				if err != nil {
					return fmt.Errorf("%s read of %s: %w", st.name, a.key, err)
				}
				if got != a.size {
					return fmt.Errorf("%s read of %s: %d bytes, want %d", st.name, a.key, got, a.size)
				}
				if i >= warm {
					lat[j] = append(lat[j], took)
				}
			}
		}
		return nil
	}
	var misses, hits []int
	for j, st := range steps {
		if strings.HasSuffix(st.name, "-hit") {
			hits = append(hits, j)
		} else {
			misses = append(misses, j)
		}
	}
	if err := measureRounds(misses); err != nil {
		return err
	}
	if len(hits) > 0 {
		// Write-back commits after the last byte was served; give it a
		// moment so the hits are hits.
		time.Sleep(500 * time.Millisecond)
		if err := measureRounds(hits); err != nil {
			return err
		}
	}
	for j, st := range steps {
		s := measure.Summarize(lat[j])
		if st.name == "s3-raw" {
			floor = s.P50
		}
		fmt.Printf("%-8s %-13s %5d %10s %10s %10s %10.1f %12s\n", pattern.FormatSize(size), st.name, s.N,
			measure.Ms(s.P50), measure.Ms(s.P99), measure.Ms(s.Mean),
			float64(size)/1e6/s.P50.Seconds(), "+"+measure.Ms(s.P50-floor))
	}
	return nil
}

// seed stores artifact i of size index si in S3 only, through the S3
// tier so its layout is exactly what the regional reads.
func (p *paths) seed(ctx context.Context, si int, size int64, i int) (artifact, error) {
	key := pattern.Key(p.o.run, si<<20|i)
	hash, err := pattern.Hash(key, size)
	if err != nil {
		return artifact{}, err
	}
	ref := messages.Ref{Namespace: "gradle", Key: key}
	if err := p.s3.Put(ctx, ref, messages.Meta{Size: size, Hash: hash}, pattern.New(key, size)); err != nil {
		return artifact{}, fmt.Errorf("seed %s: %w", key, err)
	}
	return artifact{key: key, hash: hash, size: size}, nil
}

func (p *paths) readRaw(ctx context.Context, a artifact) (int64, error) {
	out, err := p.raw.GetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(p.o.bucket), Key: aws.String(p.o.prefix + "cas/" + a.hash[:2] + "/" + a.hash),
	})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	return io.CopyBuffer(io.Discard, out.Body, p.buf)
}

func (p *paths) readTier(t tier.Tier) func(context.Context, artifact) (int64, error) {
	return func(ctx context.Context, a artifact) (int64, error) {
		_, body, err := t.Get(ctx, messages.Ref{Namespace: "gradle", Key: a.key})
		if err != nil {
			return 0, err
		}
		defer body.Close()
		return io.CopyBuffer(io.Discard, body, p.buf)
	}
}

func (p *paths) readEdge(ctx context.Context, a artifact) (int64, error) {
	return p.readHTTP(ctx, p.o.edge+"/cache/"+a.key)
}

// readRelay reads the blob object through limitrelay.
func (p *paths) readRelay(mode string) func(context.Context, artifact) (int64, error) {
	return func(ctx context.Context, a artifact) (int64, error) {
		return p.readHTTP(ctx, p.o.relay+"/"+mode+"/"+p.o.prefix+"cas/"+a.hash[:2]+"/"+a.hash)
	}
}

func (p *paths) readHTTP(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return io.CopyBuffer(io.Discard, resp.Body, p.buf)
}
