package devstack

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func versitygwClient(t *testing.T, v *Versitygw, secret string) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(v.Endpoint, "http://"), &minio.Options{
		Creds:        credentials.NewStaticV4(v.AccessKey, secret, ""),
		Region:       v.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	require.NoError(t, err)
	return c
}

func TestStartVersitygw(t *testing.T) {
	bin := skipWithoutTool(t, "versitygw")
	ctx := testCtx(t)
	t.Setenv("ROOT_ACCESS_KEY_ID", "from-the-environment") // must not reach the gateway
	t.Setenv("VGW_PORT", "127.0.0.1:1")

	start := time.Now()
	v, err := StartVersitygw(ctx, VersitygwOptions{Bin: bin, Buckets: []string{"hires-a", "hires-b"}, Output: newLogWriter(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Stop() })
	t.Logf("versitygw ready in %v at %s", time.Since(start), v.Endpoint)
	assert.True(t, strings.HasPrefix(v.Endpoint, "http://127.0.0.1:"), v.Endpoint)
	assert.Equal(t, "us-east-1", v.Region)
	assert.NotEmpty(t, v.AccessKey)
	assert.GreaterOrEqual(t, len(v.SecretKey), 32)

	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(v.PID()) + "/cmdline")
	require.NoError(t, err)
	assert.NotContains(t, string(cmdline), v.SecretKey, "the secret stays off the command line")

	c := versitygwClient(t, v, v.SecretKey)
	buckets, err := c.ListBuckets(ctx)
	require.NoError(t, err)
	var names []string
	for _, b := range buckets {
		names = append(names, b.Name)
	}
	assert.ElementsMatch(t, []string{"hires-a", "hires-b"}, names)
	require.NoError(t, v.CreateBucket(ctx, "hires-a"), "creating an existing bucket is fine")

	body := []byte("an object")
	_, err = c.PutObject(ctx, "hires-a", "results/x.png", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	require.NoError(t, err)
	obj, err := c.GetObject(ctx, "hires-a", "results/x.png", minio.GetObjectOptions{})
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	assert.Equal(t, body, got)
	onDisk, err := os.ReadFile(filepath.Join(v.Dir, "hires-a", "results", "x.png"))
	require.NoError(t, err, "the POSIX backend keeps objects as files")
	assert.Equal(t, body, onDisk)

	_, err = versitygwClient(t, v, "wrong-secret-0123456789").ListBuckets(ctx)
	require.Error(t, err, "other credentials are refused")

	pid, dir := v.PID(), v.Dir
	require.NoError(t, v.Stop())
	require.NoError(t, v.Stop(), "Stop is idempotent")
	requireGone(t, pid)
	_, err = os.Stat(dir)
	assert.True(t, errors.Is(err, os.ErrNotExist), "temporary Dir removed, got %v", err)
}

// A fixed address and a caller's Dir: data survives a restart, Dir is
// kept, and a second gateway on the same port fails and says why.
func TestStartVersitygwFixedAddrAndDir(t *testing.T) {
	bin := skipWithoutTool(t, "versitygw")
	ctx := testCtx(t)
	port, err := FreePort()
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "s3")
	opts := VersitygwOptions{
		Bin: bin, Addr: "localhost:" + strconv.Itoa(port), Dir: dir,
		AccessKey: "HIRESLOCAL", SecretKey: "hires-local-secret-0123456789",
		Region: "eu-west-1", Buckets: []string{"hires"}, Output: newLogWriter(t),
	}
	v, err := StartVersitygw(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Stop() })
	assert.Equal(t, "http://127.0.0.1:"+strconv.Itoa(port), v.Endpoint)
	assert.Equal(t, "eu-west-1", v.Region)
	c := versitygwClient(t, v, opts.SecretKey)
	_, err = c.PutObject(ctx, "hires", "results/kept.png", strings.NewReader("kept"), 4, minio.PutObjectOptions{})
	require.NoError(t, err)

	second := opts
	second.Dir = ""
	second.StartTimeout = 10 * time.Second
	second.Output = nil
	_, err = StartVersitygw(ctx, second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "address already in use")

	require.NoError(t, v.Stop())
	_, err = os.Stat(filepath.Join(dir, "hires", "results", "kept.png"))
	require.NoError(t, err, "a caller's Dir is kept")

	v, err = StartVersitygw(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Stop() })
	obj, err := versitygwClient(t, v, opts.SecretKey).GetObject(ctx, "hires", "results/kept.png", minio.GetObjectOptions{})
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	assert.Equal(t, "kept", string(got))
}

func TestStartVersitygwRejectsBadOptions(t *testing.T) {
	for _, tt := range []struct {
		opts VersitygwOptions
		want string
	}{
		{VersitygwOptions{Bin: "/nonexistent", Addr: "0.0.0.0:7070"}, "not a loopback address"},
		{VersitygwOptions{Bin: "/nonexistent", Addr: "[::]:7070"}, "not a loopback address"},
		{VersitygwOptions{Bin: "/nonexistent", Addr: "example.com:7070"}, "not a loopback address"},
		{VersitygwOptions{Bin: "/nonexistent", Addr: "no-port"}, "Addr"},
		{VersitygwOptions{Bin: "/nonexistent", AccessKey: "only-the-id"}, "both AccessKey and SecretKey"},
	} {
		_, err := StartVersitygw(testCtx(t), tt.opts)
		require.ErrorContains(t, err, tt.want)
		assert.True(t, strings.HasPrefix(err.Error(), "versitygw: "), err.Error())
	}
}

func TestStartVersitygwFailureShowsOutput(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "versitygw")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho fake-versitygw-says-hello\nexit 3\n"), 0o755))
	_, err := StartVersitygw(testCtx(t), VersitygwOptions{Bin: fake, StartTimeout: 5 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "versitygw: not ready")
	assert.Contains(t, err.Error(), "fake-versitygw-says-hello")
	assert.Contains(t, err.Error(), "exit status 3")
}

func TestWithoutVersitygwEnv(t *testing.T) {
	got := withoutVersitygwEnv([]string{
		"PATH=/bin", "VGW_PORT=:7070", "ROOT_ACCESS_KEY_ID=a", "ROOT_ACCESS_KEY=a",
		"ROOT_SECRET_ACCESS_KEY=s", "ROOT_SECRET_KEY=s", "LOGFILE=x", "WEBHOOK=y", "HOME=/root",
	})
	assert.Equal(t, []string{"PATH=/bin", "HOME=/root"}, got)
}
