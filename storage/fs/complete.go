package fs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/slipway/slipway/storage"
)

// CompleteMultipart assembles the named parts (ascending numbers, ETags as
// returned by PutPart or ListParts) into key. Part 1 is never copied: the
// other parts are appended to it in the kernel (copy_file_range), and a
// single-part upload is just renamed into place.
//
// If anything fails before the object is in place, part 1 is restored (size
// and mtime, hence its ETag) and the upload handed back, so the caller can
// retry as on S3.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []storage.Part) (storage.Info, error) {
	dir, err := s.upload("complete multipart", key, uploadID)
	if err != nil {
		return storage.Info{}, err
	}
	target, _ := s.path(key) // valid: checked by upload
	if len(parts) == 0 {
		return storage.Info{}, fmt.Errorf("fs: complete multipart %q: no parts", key)
	}
	for i, pt := range parts {
		if pt.Number < 1 || (i > 0 && pt.Number <= parts[i-1].Number) {
			return storage.Info{}, fmt.Errorf("fs: complete multipart %q: part numbers must ascend", key)
		}
	}
	claimed := filepath.Join(s.tmp, "complete-"+uploadID+"-"+randomHex(4))
	if err := os.Rename(dir, claimed); err != nil {
		if isNotFound(err) {
			return storage.Info{}, fmt.Errorf("fs: complete multipart %q: upload %q: %w", key, uploadID, storage.ErrNotFound)
		}
		return storage.Info{}, wrap("complete multipart", key, err)
	}
	fi, err := s.assemble(ctx, key, target, claimed, parts)
	if err != nil {
		_ = os.Rename(claimed, dir) // hand the upload back
		return storage.Info{}, err
	}
	_ = os.RemoveAll(claimed)
	if err := syncDir(filepath.Dir(target)); err != nil {
		return storage.Info{}, wrap("complete multipart", key, err)
	}
	return info(key, fi), nil
}

// assemble checks the parts in the claimed upload dir, concatenates them
// onto the first and renames that into place at target.
func (s *Store) assemble(ctx context.Context, key, target, dir string, parts []storage.Part) (_ os.FileInfo, err error) {
	for _, pt := range parts {
		fi, err := os.Stat(partPath(dir, pt.Number))
		if isNotFound(err) {
			return nil, fmt.Errorf("fs: complete multipart %q: part %d not uploaded: %w", key, pt.Number, storage.ErrPreconditionFailed)
		}
		if err != nil {
			return nil, wrap("complete multipart", key, err)
		}
		if info(key, fi).ETag != pt.ETag {
			return nil, fmt.Errorf("fs: complete multipart %q: part %d changed: %w", key, pt.Number, storage.ErrPreconditionFailed)
		}
	}
	first := partPath(dir, parts[0].Number)
	orig, err := os.Stat(first)
	if err != nil {
		return nil, wrap("complete multipart", key, err)
	}
	defer func() {
		if err != nil { // until the rename below succeeds, first is still ours
			_ = os.Truncate(first, orig.Size())
			_ = setMtime(first, orig.ModTime())
		}
	}()
	fi, err := s.concat(ctx, first, dir, parts[1:])
	if err != nil {
		return nil, wrap("complete multipart", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, wrap("complete multipart", key, err)
	}
	unlock, err := s.lock(key)
	if err != nil {
		return nil, err
	}
	err = s.place(target, func() error { return rename(first, target) })
	unlock()
	if err != nil {
		return nil, wrap("complete multipart", key, err)
	}
	return fi, nil
}

// concat appends the rest parts to first, stamps and fsyncs it.
func (s *Store) concat(ctx context.Context, first, dir string, rest []storage.Part) (os.FileInfo, error) {
	// Not O_APPEND: Linux refuses copy_file_range into append-mode files.
	f, err := os.OpenFile(first, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return nil, err
	}
	for _, pt := range rest {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := appendFile(f, partPath(dir, pt.Number)); err != nil {
			return nil, err
		}
	}
	if err := setMtime(first, s.stamp()); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return fi, f.Close()
}

func appendFile(dst *os.File, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = io.Copy(dst, src) // *os.File to *os.File: copy_file_range
	return err
}
