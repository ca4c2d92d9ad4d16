package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/e2e/harness"
	"github.com/tuist/fabrik-node/internal/minio"
)

// regionUpstreams is a regional's [[upstream]] list for cross-region
// replication, as docs/deployment.md describes: its own region's bucket
// (read and written through), then the other region's (write_through and
// read_only: a replica, written, never read).
func regionUpstreams(home, away *minio.Server, homeBucket, awayBucket string) string {
	return fmt.Sprintf(`[[upstream]]
url = "s3://%s/fabrik/"
endpoint = %q
region = "us-east-1"
access_key = %q
secret_key = %q
permanent = true

[[upstream]]
url = "s3://%s/fabrik/"
endpoint = %q
region = "us-east-1"
access_key = %q
secret_key = %q
permanent = true
write_through = true
read_only = true
`, homeBucket, home.Endpoint, home.AccessKey, home.SecretKey, awayBucket, away.Endpoint, away.AccessKey, away.SecretKey)
}

// Two regions, each a MinIO bucket and a regional replicating to the other:
// an artifact written through the US edge lands in the EU bucket, an EU edge
// reads it from the EU regional, and the US regional never reads from EU
// (its upstream-1 read counter stays absent, even for misses). ~15 s.
func TestTwoRegionsReplicate(t *testing.T) {
	us, eu := minio.Start(t), minio.Start(t)
	us.CreateBucket(t, "cache-us")
	eu.CreateBucket(t, "cache-eu")
	usRegional := harness.StartNodeWith(t, harness.NodeOptions{Args: []string{"--role", "regional"}, ExtraTOML: regionUpstreams(us, eu, "cache-us", "cache-eu")})
	euRegional := harness.StartNodeWith(t, harness.NodeOptions{Args: []string{"--role", "regional"}, ExtraTOML: regionUpstreams(eu, us, "cache-eu", "cache-us")})
	edgeOf := func(r *harness.Node) *harness.Node {
		return harness.StartNodeWith(t, harness.NodeOptions{ExtraTOML: fmt.Sprintf("[[upstream]]\nurl = %q\n", "grpc://"+r.FabrikAddr)})
	}
	usEdge, euEdge := edgeOf(usRegional), edgeOf(euRegional)

	key := fmt.Sprintf("%064x", 0xe0e0)
	body := make([]byte, 3<<20)
	rand.Read(body)
	req, _ := http.NewRequest(http.MethodPut, usEdge.HTTPURL()+"/cache/"+key, bytes.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("PUT through the US edge: %s", res.Status)
	}

	inBucket := func(srv *minio.Server, bucket string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("fabrik/keys/gradle/" + key)})
		return err == nil
	}
	if !waitFor(30*time.Second, func() bool { return inBucket(us, "cache-us") && inBucket(eu, "cache-eu") }) {
		t.Fatalf("30s after the write: in US bucket %v, in EU bucket %v", inBucket(us, "cache-us"), inBucket(eu, "cache-eu"))
	}

	// The EU edge (empty) reads it from the EU regional (empty too), which
	// reads its own region's bucket.
	res, err = http.Get(euEdge.HTTPURL() + "/cache/" + key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET through the EU edge: %s, %d bytes (%v), want the %d written in US", res.Status, len(got), err, len(body))
	}
	euM := scrape(t, euRegional, "")
	if euM[`fabrik_upstream_requests_total{upstream="upstream-0",result="hit"}`] < 1 {
		t.Errorf("EU regional did not read the artifact from its own bucket: %v", euM.sumPrefix("fabrik_upstream_requests_total"))
	}

	// A miss on the US side falls through the US bucket and stops there.
	res, err = http.Get(usEdge.HTTPURL() + "/cache/" + fmt.Sprintf("%064x", 0xdead))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET of an absent key through the US edge: %s", res.Status)
	}
	usM := scrape(t, usRegional, "")
	if usM[`fabrik_upstream_requests_total{upstream="upstream-0",result="miss"}`] < 1 {
		t.Errorf("US regional did not read its own bucket on a miss: %v", usM.sumPrefix("fabrik_upstream_requests_total"))
	}
	if n := usM.sumPrefix(`fabrik_upstream_requests_total{upstream="upstream-1"`); n != 0 {
		t.Errorf("US regional read from the EU replica %v times", n)
	}
}
