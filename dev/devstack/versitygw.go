package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// VersitygwOptions configures StartVersitygw.
type VersitygwOptions struct {
	// Bin is the versitygw binary; default ToolPath("versitygw").
	Bin string
	// Addr is the loopback host:port of the S3 API. Default "127.0.0.1:0":
	// a free port. Only loopback hosts are accepted: the gateway speaks
	// plain HTTP.
	Addr string
	// Dir is the POSIX backend's root: each subdirectory is a bucket, each
	// file an object. Its file system must support user extended
	// attributes. Default: a temporary directory that Stop removes; a
	// caller's Dir is created if needed and kept.
	Dir string
	// AccessKey and SecretKey are the root account's credentials; default
	// random ones. They reach the gateway through its environment, never
	// its command line.
	AccessKey, SecretKey string
	// Region is the region the gateway reports; default "us-east-1".
	Region string
	// Buckets are created once the gateway is ready (existing ones kept).
	Buckets []string
	// Output receives the gateway's output; nil discards it.
	Output io.Writer
	// StartTimeout bounds start-up; default 30s. ctx may end it earlier.
	StartTimeout time.Duration
}

// Versitygw is a running Versity S3 gateway with a POSIX backend: a real
// S3-compatible server on loopback.
type Versitygw struct {
	// Endpoint is the S3 API's base URL, e.g. "http://127.0.0.1:7070";
	// address buckets path-style (Endpoint/bucket/key).
	Endpoint string
	// AccessKey, SecretKey and Region sign requests (SigV4).
	AccessKey, SecretKey, Region string
	// Dir is the backend's root directory.
	Dir string

	proc     *process
	ownDir   bool
	client   *minio.Client
	marker   string // bucket only this instance lists while starting
	stopOnce sync.Once
	stopErr  error
}

// StartVersitygw runs versitygw's POSIX backend on loopback and waits until
// an S3 request signed with its credentials (ListBuckets) succeeds and shows
// a marker bucket made for this start, which proves that what answers on
// the port is this instance and not another one that held it already.
func StartVersitygw(ctx context.Context, opts VersitygwOptions) (*Versitygw, error) {
	bin, err := binOrTool(opts.Bin, "versitygw")
	if err != nil {
		return nil, err
	}
	opts.Bin = bin
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if (opts.AccessKey == "") != (opts.SecretKey == "") {
		return nil, errors.New("versitygw: set both AccessKey and SecretKey, or neither")
	}
	if opts.AccessKey == "" {
		opts.AccessKey, opts.SecretKey = "VGW"+strings.ToUpper(randomHex(10)), randomHex(20)
	}
	host, port, err := loopbackAddr(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("versitygw: Addr: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	for attempt := 1; ; attempt++ {
		v, err := startVersitygwOnce(ctx, opts, host, port)
		if err == nil {
			return v, nil
		}
		// versitygw cannot report a port it picked itself, so free ports
		// come from FreePort; on losing that race, try another one.
		if port == 0 && attempt < portAttempts && v != nil && v.proc.out.Contains("address already in use") {
			continue
		}
		return nil, err
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b)
}

// startVersitygwOnce returns the (stopped) handle along with an error so
// that the caller can inspect the output.
func startVersitygwOnce(ctx context.Context, opts VersitygwOptions, host string, port int) (*Versitygw, error) {
	var err error
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, fmt.Errorf("versitygw: %w", err)
		}
	}
	dir, ownDir := opts.Dir, opts.Dir == ""
	if ownDir {
		if dir, err = os.MkdirTemp("", "devstack-versitygw-"); err != nil {
			return nil, fmt.Errorf("versitygw: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("versitygw: %w", err)
	}
	// The POSIX backend lists every directory of its root as a bucket.
	marker := "devstack-ready-" + randomHex(8)
	markerDir := filepath.Join(dir, marker)
	if err := os.Mkdir(markerDir, 0o750); err != nil {
		if ownDir {
			_ = os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("versitygw: %w", err)
	}
	defer os.Remove(markerDir) // only needed until ready
	cleanup := func() {
		if ownDir {
			_ = os.RemoveAll(dir)
		}
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	cmd := exec.Command(opts.Bin,
		"--port", addr,
		"--region", opts.Region,
		"--quiet", // no per-request lines
		"posix", dir,
	)
	cmd.Env = append(withoutVersitygwEnv(os.Environ()),
		"ROOT_ACCESS_KEY_ID="+opts.AccessKey,
		"ROOT_SECRET_ACCESS_KEY="+opts.SecretKey,
	)
	cmd.Dir = dir
	proc, err := startProcess("versitygw", cmd, opts.Output, nil)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("versitygw: %w", err)
	}
	v := &Versitygw{
		Endpoint:  "http://" + addr,
		AccessKey: opts.AccessKey,
		SecretKey: opts.SecretKey,
		Region:    opts.Region,
		Dir:       dir,
		proc:      proc,
		ownDir:    ownDir,
		marker:    marker,
	}
	v.client, err = minio.New(addr, &minio.Options{
		Creds:        credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, ""),
		Region:       opts.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1, // the readiness loop retries
	})
	if err != nil {
		proc.kill()
		cleanup()
		return nil, fmt.Errorf("versitygw: client: %w", err)
	}
	err = pollUntil(ctx, proc, 50*time.Millisecond, func() error { return v.ready(ctx) })
	for _, b := range opts.Buckets {
		if err != nil {
			break
		}
		err = v.CreateBucket(ctx, b)
	}
	if err != nil {
		proc.kill()
		cleanup()
		return v, proc.failure("not ready (S3 %s): %v", addr, err)
	}
	return v, nil
}

// withoutVersitygwEnv drops the variables versitygw reads as settings,
// which would override the flags' intent (a second listener, other
// credentials, IAM or event back-ends).
func withoutVersitygwEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "VGW_"),
			strings.HasPrefix(name, "ROOT_ACCESS_KEY"),
			strings.HasPrefix(name, "ROOT_SECRET"),
			name == "LOGFILE", name == "WEBHOOK":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// ready lists the buckets with this instance's credentials: the server
// answers S3, knows them, and serves this instance's directory.
func (v *Versitygw) ready(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	buckets, err := v.client.ListBuckets(cctx)
	if err != nil {
		return err
	}
	for _, b := range buckets {
		if b.Name == v.marker {
			return nil
		}
	}
	return fmt.Errorf("%s is served by another process (its buckets lack this start's marker)", v.Endpoint)
}

// CreateBucket creates bucket; an existing bucket of this account is fine.
func (v *Versitygw) CreateBucket(ctx context.Context, bucket string) error {
	err := v.client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: v.Region})
	if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("versitygw: create bucket %s: %w", bucket, err)
	}
	return nil
}

// PID is the gateway's process id.
func (v *Versitygw) PID() int { return v.proc.pid() }

// Stop terminates the gateway and removes Dir if it was a temporary one.
// Idempotent.
func (v *Versitygw) Stop() error {
	v.stopOnce.Do(func() {
		v.stopErr = v.proc.stop(syscall.SIGTERM, 5*time.Second)
		if v.ownDir {
			if err := os.RemoveAll(v.Dir); err != nil && v.stopErr == nil {
				v.stopErr = fmt.Errorf("versitygw: remove %s: %w", v.Dir, err)
			}
		}
	})
	return v.stopErr
}
