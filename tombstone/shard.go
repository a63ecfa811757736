package tombstone

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/slipway/slipway/storage"
)

// shard is the content of a shard object: the tombstones of the object
// keys that hash to it. A shard that holds none stays, empty: deleting it
// would need a conditional delete, which S3 does not offer, and an
// unconditional one could remove a tombstone written meanwhile.
type shard struct {
	Tombs map[string]Tomb `json:"tombs"`
}

// maxRounds bounds update's read-modify-write rounds. A round is lost
// only to another write of the same shard (a collector's batch, a
// writer's rescue), each of which ends; a few rounds always settle.
const maxRounds = 32

// readShard returns the tombstones of the shard at key and its ETag; a
// missing shard has none and ETag "".
func readShard(ctx context.Context, s storage.Store, key string) (map[string]Tomb, string, error) {
	var sh shard
	etag, err := readJSON(ctx, s, key, &sh)
	if errors.Is(err, storage.ErrNotFound) {
		return map[string]Tomb{}, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	if sh.Tombs == nil {
		sh.Tombs = map[string]Tomb{}
	}
	return sh.Tombs, etag, nil
}

// update reads the shard at key, lets f change its tombstones, and writes
// the shard back with put-if-match on the version read (put-if-absent for
// a missing shard); when another write came between, it starts again from
// a fresh read. So each successful update is one atomic step on every
// tombstone of the shard. f reports whether it changed anything (nothing
// is written otherwise) and may be called several times; an error from f
// is returned as is.
func update(ctx context.Context, s storage.Store, key string, f func(tombs map[string]Tomb) (bool, error)) error {
	for round := 0; round < maxRounds; round++ {
		tombs, etag, err := readShard(ctx, s, key)
		if err != nil {
			return err
		}
		changed, err := f(tombs)
		if err != nil || !changed {
			return err
		}
		r := encode(shard{Tombs: tombs})
		if etag == "" {
			_, err = s.PutIfAbsent(ctx, key, r, r.Size())
		} else {
			_, err = s.PutIfMatch(ctx, key, r, r.Size(), etag)
		}
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return err
		}
		// Another write of the shard came between: read again, after a
		// short random pause so that two losers do not meet again.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(rand.Int64N(int64(time.Millisecond) * int64(1+min(round, 10))))):
		}
	}
	return fmt.Errorf("tombstone shard %s: kept changing: %w", key, storage.ErrUnavailable)
}

// newVersion returns a fresh tombstone version.
func newVersion() string {
	var b [8]byte
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	return hex.EncodeToString(b[:])
}

func encode(v any) *bytes.Reader {
	b, err := json.Marshal(v)
	if err != nil { // only plain structs are encoded
		panic(err)
	}
	return bytes.NewReader(b)
}

// readJSON decodes the JSON object at key into v and returns its ETag.
func readJSON(ctx context.Context, s storage.Store, key string, v any) (string, error) {
	rc, info, err := s.Get(ctx, key, storage.GetOptions{})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return info.ETag, nil
}

// lookup is the tombstone of objectKey in a shard's tombstones, with its
// version, or storage.ErrNotFound.
func lookup(tombs map[string]Tomb, objectKey string) (Tomb, string, error) {
	t, ok := tombs[objectKey]
	if !ok {
		return Tomb{}, "", storage.ErrNotFound
	}
	if err := t.valid(); err != nil {
		return Tomb{}, "", fmt.Errorf("tombstone %s: %w", objectKey, err)
	}
	return t, t.Version, nil
}
