package minio

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestStartCreateBucketStopRestart(t *testing.T) {
	s := Start(t)
	s.CreateBucket(t, "probe")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("probe")}); err != nil {
		t.Fatalf("head bucket: %v", err)
	}

	s.Stop()
	if resp, err := http.Get(s.Endpoint + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Fatalf("minio still answers after Stop")
	}

	s.Restart(t)
	// The data directory survives a restart, so the bucket does too.
	if _, err := s.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("probe")}); err != nil {
		t.Fatalf("head bucket after restart: %v", err)
	}
}
