package registry

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/slipway/slipway/storage"
)

// The tag journal lets a reader learn every tag of a repository, with
// what each names, from two small reads (tagread.go) instead of one read
// per tag. Its keys:
//
//	repositories/<name>/_tagjournal/<tag>/<id>   a write of <tag> began; content
//	                                             "" while it may still land, "done"
//	                                             once it returned
//	repositories/<name>/_tagindex/tags           every tag's content as of some
//	                                             moment (JSON), replaced with
//	                                             compare-and-set
//
// The contract every tag write keeps (journaledStore): the journal record
// exists, with content "", before the write is sent, and is marked done
// only after the write returned (shortly after: Registry.Wait waits for
// the marks). A record is deleted (tagread.go: fold) only if it was done
// when a reader listed the journal, and only after that reader stored,
// with compare-and-set, an index version holding the tag as read after
// that listing. So at any moment, for every tag write that has
// completed, either its record is still in the journal or the index
// holds what the tag held at some instant after the write completed (or
// something newer).

// journalDone is the content of a journal record whose write returned.
const journalDone = "done"

// journaledStore is the registry's store: every write or delete of a tag
// key, whichever code path makes it, is journaled (the contract above).
// Everything else passes through.
type journaledStore struct {
	storage.Store
	// later counts the done marks still being written (Registry.Wait).
	later *sync.WaitGroup
}

// journalTags wraps store, keeping the optional capabilities (presigned
// URLs, stale multipart cleanup) of what it wraps; later counts the work
// it leaves running after a write returns.
func journalTags(store storage.Store, later *sync.WaitGroup) storage.Store {
	return storage.Wrapped(&journaledStore{Store: store, later: later}, store)
}

// journaled runs write, a write of key, inside a journal record when key
// is a tag key. A write that failed in a way that says it did not happen
// (lost a condition, nothing to replace) counts as returned; any other
// failure leaves the record open, since the request may still land, and
// readers then read that tag directly for good (a cost, never a stale
// answer). The record is marked done after write returns, off the
// caller's path: until then it is open, which readers handle the same
// way; a failure to mark it (or a process gone first) costs the same and
// is not reported.
func (s *journaledStore) journaled(ctx context.Context, key string, write func() error) error {
	name, tag, ok := tagOfKey(key)
	if !ok {
		return write()
	}
	rk := journalKey(name, tag, newObjectID())
	if _, err := s.Store.PutIfAbsent(ctx, rk, strings.NewReader(""), 0); err != nil {
		return err
	}
	err := write()
	if err == nil || errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound) {
		s.later.Add(1)
		go func() {
			defer s.later.Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = s.Store.Put(ctx, rk, strings.NewReader(journalDone), int64(len(journalDone)))
		}()
	}
	return err
}

// Put journals writes of tag keys.
func (s *journaledStore) Put(ctx context.Context, key string, r io.Reader, size int64) (info storage.Info, err error) {
	err = s.journaled(ctx, key, func() error {
		info, err = s.Store.Put(ctx, key, r, size)
		return err
	})
	return info, err
}

// PutIfAbsent journals writes of tag keys.
func (s *journaledStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) (info storage.Info, err error) {
	err = s.journaled(ctx, key, func() error {
		info, err = s.Store.PutIfAbsent(ctx, key, r, size)
		return err
	})
	return info, err
}

// PutIfMatch journals writes of tag keys.
func (s *journaledStore) PutIfMatch(ctx context.Context, key string, r io.Reader, size int64, etag string) (info storage.Info, err error) {
	err = s.journaled(ctx, key, func() error {
		info, err = s.Store.PutIfMatch(ctx, key, r, size, etag)
		return err
	})
	return info, err
}

// Delete journals deletes of tag keys.
func (s *journaledStore) Delete(ctx context.Context, key string) error {
	return s.journaled(ctx, key, func() error { return s.Store.Delete(ctx, key) })
}
