package api

import (
	"bytes"
	"context"
	"time"

	"hires/internal/sitekey"
	"hires/internal/store"
)

// testSiteKey is the one active key of the handlers' unit tests; the
// idempotency and rate-limit semantics are tested on PostgreSQL (store
// and e2e suites), these fakes only let the handlers run.
var testSiteKey = sitekey.New()

func (f *fakeStore) Authenticate(_ context.Context, hash []byte) (store.SiteKey, error) {
	f.called("Authenticate")
	if !bytes.Equal(hash, sitekey.Hash(testSiteKey)) {
		return store.SiteKey{}, store.ErrSiteKeyNotFound
	}
	return store.SiteKey{ID: "sk_test", Site: "test-site", Name: "unit tests"}, nil
}

func (f *fakeStore) Allow(context.Context, string, int, int) (bool, time.Duration, error) {
	f.called("Allow")
	return true, 0, nil
}

type idemEntry struct {
	request []byte
	jobID   string
	resp    *store.StoredResponse
}

func (f *fakeStore) ReserveIdempotency(_ context.Context, site string, keyHash, requestHash []byte, jobID string, _, _ time.Duration) (store.Idempotency, error) {
	f.called("ReserveIdempotency")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.idem == nil {
		f.idem = map[string]*idemEntry{}
	}
	e, ok := f.idem[site+"\x00"+string(keyHash)]
	switch {
	case !ok:
		f.idem[site+"\x00"+string(keyHash)] = &idemEntry{request: requestHash, jobID: jobID}
		return store.Idempotency{JobID: jobID}, nil
	case !bytes.Equal(e.request, requestHash):
		return store.Idempotency{JobID: e.jobID, Conflict: store.ErrIdempotencyMismatch}, nil
	case e.resp != nil:
		return store.Idempotency{JobID: e.jobID, Replay: e.resp}, nil
	}
	return store.Idempotency{JobID: e.jobID}, nil
}

func (f *fakeStore) CompleteIdempotency(_ context.Context, site string, keyHash []byte, status int, body []byte) error {
	f.called("CompleteIdempotency")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idem[site+"\x00"+string(keyHash)].resp = &store.StoredResponse{Status: status, Body: body}
	return nil
}

func (f *fakeStore) ReleaseIdempotency(context.Context, string, []byte) error {
	f.called("ReleaseIdempotency")
	return nil
}
