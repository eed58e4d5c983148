//go:build integration

package storage

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"hires/dev/devstack"
)

// vgw is a real S3-compatible server (versitygw, POSIX backend) for the
// whole package; every test gets its own bucket.
var vgw *devstack.Versitygw

// TestMain starts versitygw. Without the pinned binary the integration
// run fails: `make tools` builds it.
func TestMain(m *testing.M) { os.Exit(runWithVersitygw(m)) }

func runWithVersitygw(m *testing.M) int {
	bin, err := devstack.ToolPath("versitygw")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the S3 storage tests need versitygw: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vgw, err = devstack.StartVersitygw(ctx, devstack.VersitygwOptions{Bin: bin})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start versitygw: %v\n", err)
		return 1
	}
	defer vgw.Stop()
	var buckets atomic.Int64
	s3Backend = func(t *testing.T) Store {
		bucket := fmt.Sprintf("hires-test-%d", buckets.Add(1))
		require.NoError(t, vgw.CreateBucket(t.Context(), bucket))
		return newTestS3(t, bucket, vgw.SecretKey)
	}
	return m.Run()
}

func newTestS3(t *testing.T, bucket, secret string) *S3 {
	t.Helper()
	s, err := NewS3(S3Options{
		Endpoint: vgw.Endpoint, Bucket: bucket, Region: vgw.Region,
		AccessKeyID: vgw.AccessKey, SecretAccessKey: secret,
	})
	require.NoError(t, err)
	return s
}

// The upload really is multipart (an ETag of "<md5>-<parts>") with the
// content type taken from the key.
func TestS3MultipartUploadAndContentType(t *testing.T) {
	s := s3Backend(t).(*S3)
	body := randomBytes(DefaultS3PartSize+1000, 6)
	put(t, s, "results/job.png", body)
	info, err := s.client.StatObject(t.Context(), s.bucket, "results/job.png", minio.StatObjectOptions{})
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(info.ETag, "-2"), "ETag %q of a 2-part upload", info.ETag)
	assert.Equal(t, "image/png", info.ContentType)
	assert.Equal(t, int64(len(body)), info.Size)

	// The bytes sit in the POSIX backend under bucket/key.
	onDisk, err := os.ReadFile(vgw.Dir + "/" + s.bucket + "/results/job.png")
	require.NoError(t, err)
	assert.Equal(t, sum(body), sum(onDisk))
}

// A failed upload leaves no multipart upload behind.
func TestS3FailedPutIsAborted(t *testing.T) {
	s := s3Backend(t).(*S3)
	_, err := s.Put(t.Context(), "results/job.png", &errReader{r: strings.NewReader(strings.Repeat("x", 1000)), err: io.ErrUnexpectedEOF})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	var pending []string
	for u := range s.client.ListIncompleteUploads(t.Context(), s.bucket, "", true) {
		require.NoError(t, u.Err)
		pending = append(pending, u.Key)
	}
	assert.Empty(t, pending)
}

func TestS3WrongSecretAndMissingBucket(t *testing.T) {
	s3Backend(t) // creates a bucket, so the server is known to answer
	const wrong = "not-the-right-secret-0123456789abcdef"
	bad := newTestS3(t, "hires-test-1", wrong)
	ctx := t.Context()
	_, err := bad.Put(ctx, "results/job.png", strings.NewReader("x"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), wrong)
	assert.NotContains(t, err.Error(), vgw.SecretKey)
	_, err = bad.Open(ctx, "results/job.png")
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrNotFound)
	assert.NotContains(t, err.Error(), wrong)
	require.Error(t, bad.Delete(ctx, "results/job.png"))

	missing := newTestS3(t, "no-such-bucket", vgw.SecretKey)
	_, err = missing.Put(ctx, "results/job.png", strings.NewReader("x"))
	require.ErrorContains(t, err, "bucket")
	require.NotErrorIs(t, err, ErrNotFound)
}
