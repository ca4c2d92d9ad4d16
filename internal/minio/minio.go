// Package minio starts a real MinIO server for tests of the S3 tier and of
// the nodes that back onto it. The binary is built once by
// scripts/install-minio.sh; tests never talk to anything but this process on
// 127.0.0.1.
package minio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/tuist/fabrik-node/internal/ci"
)

// Credentials of every test server: the root user, so tests need no policy setup.
const (
	AccessKey = "fabrik-test"
	SecretKey = "fabrik-test-secret"
)

// startTimeout bounds how long a fresh MinIO may take to answer health checks.
// It is generous because a 2-core CI runner may be compiling in parallel.
const startTimeout = 60 * time.Second

// Server is one MinIO process with its own data directory. Methods are safe
// for concurrent use; Stop, Restart, Pause and Resume are for failure tests.
type Server struct {
	// Endpoint is the S3 API base URL, http://127.0.0.1:PORT. It stays the
	// same across Restart so that clients built before a restart keep working.
	Endpoint  string
	AccessKey string
	SecretKey string

	bin     string
	dataDir string
	logPath string
	port    int
	console int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Binary returns the MinIO binary to use: $FABRIK_MINIO_BIN, else the one the
// install script caches under ~/.cache/fabrik-node/bin.
func Binary() string {
	if p := os.Getenv("FABRIK_MINIO_BIN"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "minio"
	}
	return filepath.Join(home, ".cache", "fabrik-node", "bin", "minio")
}

// Start runs a MinIO server for the duration of the test. Without a binary it
// skips locally but fails under CI or FABRIK_E2E_REQUIRE=1 (ci.Strict): a CI run
// that silently skipped every S3 test would prove nothing.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("minio binary not available (%v); run scripts/install-minio.sh or set FABRIK_MINIO_BIN", err)
		if ci.Strict() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &Server{
		AccessKey: AccessKey,
		SecretKey: SecretKey,
		bin:       bin,
		dataDir:   t.TempDir(),
		logPath:   filepath.Join(t.TempDir(), "minio.log"),
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			if out, err := os.ReadFile(s.logPath); err == nil {
				t.Logf("minio log:\n%s", out)
			}
		}
	})
	// Another process may take a port between our probe and MinIO's bind;
	// a fresh pair of ports on the next attempt gets around that.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if s.port, err = freePort(); err != nil {
			t.Fatal(err)
		}
		if s.console, err = freePort(); err != nil {
			t.Fatal(err)
		}
		s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(s.port)
		if err = s.launch(); err == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("start minio: %v", err)
	return nil
}

// launch starts the process on s.port and waits until it serves requests.
func (s *Server) launch() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open minio log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(s.bin, "server", "--quiet",
		"--address", "127.0.0.1:"+strconv.Itoa(s.port),
		"--console-address", "127.0.0.1:"+strconv.Itoa(s.console),
		s.dataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so Stop kills MinIO and anything it spawned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return s.waitReady(done)
}

// waitReady polls the liveness then readiness endpoints: live answers as soon
// as the HTTP server is up, ready only once the object layer accepts requests.
func (s *Server) waitReady(done <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for _, path := range []string{"/minio/health/live", "/minio/health/ready"} {
		for {
			resp, err := client.Get(s.Endpoint + path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-done:
				return errors.New("minio exited during start-up (see its log)")
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("minio not ready on %s after %s", s.Endpoint, startTimeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Stop kills the server's process group and waits for it to exit. The data
// directory is kept for Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// SIGKILL also ends a paused (SIGSTOPped) process.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Restart starts a stopped server again on the same port and data directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		t.Fatalf("restart minio: %v", err)
	}
}

// Pause freezes the server (SIGSTOP): connections are accepted by the kernel
// but never answered, which is how a hung upstream looks to a client.
func (s *Server) Pause(t testing.TB) { s.signal(t, syscall.SIGSTOP) }

// Resume unfreezes a paused server.
func (s *Server) Resume(t testing.TB) { s.signal(t, syscall.SIGCONT) }

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		t.Fatalf("minio is not running")
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		t.Fatalf("signal minio: %v", err)
	}
}

// Client returns a raw SDK client for the server, for tests that check what
// a tier stored or that measure the SDK without a tier.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		// MinIO accepts the SDK's default checksums, but the tier disables
		// them; the raw client matches it so comparisons are fair.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates a bucket and fails the test if it cannot.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %q: %v", name, err)
	}
}

// freePort asks the kernel for an unused port on loopback.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
