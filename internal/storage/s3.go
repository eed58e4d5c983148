package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// DefaultS3Endpoint is used when S3Options.Endpoint is empty.
const DefaultS3Endpoint = "https://s3.amazonaws.com"

// DefaultS3PartSize is the multipart part size of uploads. A Put holds one
// part in memory; S3 allows 10,000 parts, so objects up to ~156 GiB fit.
const DefaultS3PartSize = 16 << 20

// S3Options configures an S3-compatible bucket.
type S3Options struct {
	// Endpoint is the service's base URL; its scheme decides TLS
	// ("https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:7070").
	// Default DefaultS3Endpoint. Loopback and IP-address endpoints, and
	// any endpoint that is not AWS, Google or Aliyun, use path-style
	// addressing (http://host/bucket/key).
	Endpoint string
	Bucket   string
	// Region is the bucket's region; default "us-east-1".
	Region          string
	AccessKeyID     string
	SecretAccessKey string
	// PartSize is the multipart part size; default DefaultS3PartSize,
	// at least 5 MiB (S3's minimum).
	PartSize int64
	// Transport replaces the HTTP transport (tests); nil = minio-go's.
	Transport http.RoundTripper
}

// S3 stores files as objects in one bucket of an S3-compatible service.
// Uploads are multipart, so an object appears only once it is complete.
type S3 struct {
	client   *minio.Client
	bucket   string
	endpoint string // for messages: scheme://host, never credentials
	partSize int64
}

var _ Store = (*S3)(nil)

// NewS3 checks the options and builds the client; it does not contact the
// service. Errors never contain the secret key.
func NewS3(o S3Options) (*S3, error) {
	if o.Bucket == "" {
		return nil, errors.New("storage: S3 bucket is required")
	}
	if err := s3utils.CheckValidBucketNameStrict(o.Bucket); err != nil {
		return nil, fmt.Errorf("storage: S3 bucket %q: %w", o.Bucket, err)
	}
	if o.AccessKeyID == "" || o.SecretAccessKey == "" {
		return nil, errors.New("storage: S3 access key ID and secret access key are required")
	}
	if o.Endpoint == "" {
		o.Endpoint = DefaultS3Endpoint
	}
	u, err := parseEndpoint(o.Endpoint)
	if err != nil {
		return nil, err
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultS3PartSize
	}
	if o.PartSize < 5<<20 || o.PartSize > 5<<30 {
		return nil, fmt.Errorf("storage: S3 part size %d is outside 5 MiB..5 GiB", o.PartSize)
	}
	lookup := minio.BucketLookupAuto
	if isIPOrLocalhost(u.Hostname()) {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(o.AccessKeyID, o.SecretAccessKey, ""),
		Secure:       u.Scheme == "https",
		Region:       o.Region,
		BucketLookup: lookup,
		Transport:    o.Transport,
	})
	if err != nil {
		// minio.New only sees the host; no credential can be in this.
		return nil, fmt.Errorf("storage: S3 endpoint %s: %w", u.Redacted(), err)
	}
	return &S3{client: client, bucket: o.Bucket, endpoint: u.Scheme + "://" + u.Host, partSize: o.PartSize}, nil
}

// parseEndpoint accepts http(s)://host[:port][/] and nothing else.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's errors quote the input, which could hold credentials.
		return nil, errors.New("storage: S3 endpoint must be an http:// or https:// URL with a host")
	}
	if u.User != nil {
		return nil, errors.New("storage: S3 endpoint must not contain credentials; use the access key settings")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("storage: S3 endpoint must be an http:// or https:// URL with a host, got %q", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("storage: S3 endpoint must be %s://%s, without a path or query", u.Scheme, u.Host)
	}
	return u, nil
}

func isIPOrLocalhost(host string) bool {
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(host) != nil
}

// String names the backend for logs; it never contains credentials.
func (s *S3) String() string { return fmt.Sprintf("S3 bucket %s at %s", s.bucket, s.endpoint) }

// Put streams r into key as a multipart upload of unknown size, hashing it
// on the way. A failed upload is aborted and leaves any previous object.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (Written, error) {
	if err := ValidateKey(key); err != nil {
		return Written{}, err
	}
	cr := &countingReader{r: r, h: sha256.New()}
	opts := minio.PutObjectOptions{
		PartSize:    uint64(s.partSize),
		ContentType: contentType(key),
	}
	info, err := s.client.PutObject(ctx, s.bucket, key, cr, -1, opts)
	if err != nil {
		return Written{}, s.wrap("put", key, err)
	}
	if cr.err != nil || info.Size != cr.n {
		// Completed, but not with all of the source: never keep that.
		_ = s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, key, minio.RemoveObjectOptions{})
		if cr.err != nil {
			return Written{}, fmt.Errorf("storage: put %s: %w", key, &sourceError{cr.err})
		}
		return Written{}, fmt.Errorf("storage: put %s: stored %d bytes of %d", key, info.Size, cr.n)
	}
	return Written{Bytes: cr.n, SHA256: hex.EncodeToString(cr.h.Sum(nil))}, nil
}

// Open looks key up and returns it for reading; reads are ranged GETs,
// pinned to the version that was looked up (If-Match on its ETag).
func (s *S3) Open(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("open", key, err)
	}
	info, err := obj.Stat() // a HEAD request; no data is fetched yet
	if err != nil {
		obj.Close()
		return nil, s.wrap("open", key, err)
	}
	return &s3Object{obj: obj, size: info.Size, modTime: info.LastModified}, nil
}

// Delete removes key; deleting a missing key is not an error.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && !isNotFound(err) {
		return s.wrap("delete", key, err)
	}
	return nil
}

// wrap turns a missing key into ErrNotFound and names the operation.
func (s *S3) wrap(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("storage: %s %s in %s: %w", op, key, s, err)
}

func isNotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	if resp.Code == minio.NoSuchKey {
		return true
	}
	// HEAD answers carry no body, hence no code, on some servers.
	return resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket
}

func contentType(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// countingReader counts and hashes what the upload reads. It also hides
// io.ErrUnexpectedEOF, which is what a cut-off HTTP body returns: minio-go
// takes that error for the end of the data and would complete the upload.
type countingReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error // the source's first error other than io.EOF
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	if err != nil && err != io.EOF {
		if c.err == nil {
			c.err = err
		}
		return n, &sourceError{err}
	}
	return n, err
}

// sourceError is an error of the reader given to Put.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "reading the source: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// s3Object is an open object with the size and time it had when opened.
type s3Object struct {
	obj     *minio.Object
	size    int64
	modTime time.Time
}

func (o *s3Object) Read(p []byte) (int, error) { return o.obj.Read(p) }

// ReadAt is minio-go's, except that a read that fills p ends with a nil
// error, as os.File's does, even when it reaches the end of the object.
func (o *s3Object) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.obj.ReadAt(p, off)
	if err == io.EOF && n == len(p) && len(p) > 0 {
		err = nil
	}
	return n, err
}

func (o *s3Object) Seek(off int64, whence int) (int64, error) { return o.obj.Seek(off, whence) }
func (o *s3Object) Close() error                              { return o.obj.Close() }
func (o *s3Object) Size() int64                               { return o.size }
func (o *s3Object) ModTime() time.Time                        { return o.modTime }
