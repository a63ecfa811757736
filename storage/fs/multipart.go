package fs

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/slipway/slipway/storage"
)

// An upload is the directory multipart/<id> holding the file "key" (the
// target key, so an id cannot be used for another key) and one file per
// part, named by its number. State is only files: uploads survive restarts
// and are shared by processes on the same root.
//
// CompleteMultipart and AbortMultipart first rename the upload directory
// into tmp/. That claim is atomic, so a concurrent PutPart, Complete or
// Abort either finishes before it or finds no upload.

const (
	maxPartNumber = 10000 // as S3
	keyFile       = "key"
	idBytes       = 16
)

// CreateMultipart starts an upload. The directory is built in tmp and
// renamed into place, so a crash never leaves a half-made upload.
func (s *Store) CreateMultipart(ctx context.Context, key string) (string, error) {
	if _, err := s.path(key); err != nil {
		return "", err
	}
	id := randomHex(idBytes)
	stage := filepath.Join(s.tmp, "new-"+id)
	err := os.Mkdir(stage, 0o777)
	if err == nil {
		err = writeSynced(filepath.Join(stage, keyFile), []byte(key))
	}
	if err == nil {
		err = syncDir(stage)
	}
	if err == nil {
		err = os.Rename(stage, filepath.Join(s.uploads, id))
	}
	if err == nil {
		err = syncDir(s.uploads)
	}
	if err != nil {
		_ = os.RemoveAll(stage)
		return "", wrap("create multipart", key, err)
	}
	return id, nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// upload returns the directory of upload id after checking it exists and
// belongs to key.
func (s *Store) upload(op, key, id string) (string, error) {
	if _, err := s.path(key); err != nil {
		return "", err
	}
	// Only ids we could have issued; this also keeps paths inside uploads/.
	if b, err := hex.DecodeString(id); err != nil || len(b) != idBytes {
		return "", fmt.Errorf("fs: %s %q: upload %q: %w", op, key, id, storage.ErrNotFound)
	}
	dir := filepath.Join(s.uploads, id)
	b, err := os.ReadFile(filepath.Join(dir, keyFile))
	switch {
	case isNotFound(err) || (err == nil && string(b) != key):
		return "", fmt.Errorf("fs: %s %q: upload %q: %w", op, key, id, storage.ErrNotFound)
	case err != nil:
		return "", wrap(op, key, err)
	}
	return dir, nil
}

func partPath(dir string, n int) string { return filepath.Join(dir, strconv.Itoa(n)) }

// PutPart stores part n, replacing any earlier part n atomically.
func (s *Store) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (storage.Part, error) {
	dir, err := s.upload("put part", key, uploadID)
	if err != nil {
		return storage.Part{}, err
	}
	if n < 1 || n > maxPartNumber {
		return storage.Part{}, fmt.Errorf("fs: put part %q: part number %d not in 1..%d", key, n, maxPartNumber)
	}
	t, err := s.spool(ctx, r, size)
	if err != nil {
		return storage.Part{}, wrap("put part", key, err)
	}
	defer t.remove()
	if err := os.Rename(t.path, partPath(dir, n)); err != nil {
		if isNotFound(err) { // completed or aborted meanwhile
			return storage.Part{}, fmt.Errorf("fs: put part %q: upload %q: %w", key, uploadID, storage.ErrNotFound)
		}
		return storage.Part{}, wrap("put part", key, err)
	}
	if err := syncDir(dir); err != nil && !isNotFound(err) {
		return storage.Part{}, wrap("put part", key, err)
	}
	return storage.Part{Number: n, ETag: info(key, t.fi).ETag, Size: t.fi.Size()}, nil
}

// ListParts returns the upload's parts in number order.
func (s *Store) ListParts(ctx context.Context, key, uploadID string) ([]storage.Part, error) {
	dir, err := s.upload("list parts", key, uploadID)
	if err != nil {
		return nil, err
	}
	des, err := os.ReadDir(dir)
	if isNotFound(err) {
		return nil, fmt.Errorf("fs: list parts %q: upload %q: %w", key, uploadID, storage.ErrNotFound)
	}
	if err != nil {
		return nil, wrap("list parts", key, err)
	}
	var parts []storage.Part
	for _, de := range des {
		n, err := strconv.Atoi(de.Name())
		if err != nil || n < 1 || strconv.Itoa(n) != de.Name() {
			continue // the key file
		}
		fi, err := de.Info()
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, wrap("list parts", key, err)
		}
		parts = append(parts, storage.Part{Number: n, ETag: info(key, fi).ETag, Size: fi.Size()})
	}
	slices.SortFunc(parts, func(a, b storage.Part) int { return a.Number - b.Number })
	return parts, nil
}

// AbortMultipart drops the upload; a missing upload is not an error.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	dir, err := s.upload("abort multipart", key, uploadID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	claimed := filepath.Join(s.tmp, "abort-"+uploadID+"-"+randomHex(4))
	if err := os.Rename(dir, claimed); err != nil {
		if isNotFound(err) {
			return nil
		}
		return wrap("abort multipart", key, err)
	}
	if err := os.RemoveAll(claimed); err != nil {
		return wrap("abort multipart", key, err)
	}
	return nil
}
