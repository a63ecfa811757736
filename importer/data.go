package importer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/slipway/slipway/importer/stocklayout"
	"github.com/slipway/slipway/storage"
)

// How a blob's bytes reached Slipway (the summary counts bytes per way).
const (
	// CopiedByStore: the destination copied the source object without the
	// bytes passing through this process (a hard link, a server-side copy).
	CopiedByStore = "copied-by-store"
	// Streamed: read from the source and written to the destination
	// through this process, hashed on the way.
	Streamed = "streamed"
)

// CopyData writes blob b's bytes from src (the stock registry's store)
// into dst under key (a fresh data key) in the cheapest way the two
// stores allow: dst's storage.Copier on src's storage.Locator, else
// streamed. A streamed copy is hashed on the way, and bytes that do not
// hash to b's digest are deleted again and reported as a
// *stocklayout.CorruptError naming the source object; a store copy is
// trusted like the source (VerifyData checks it when asked to). It
// returns the way the bytes went.
func CopyData(ctx context.Context, dst storage.Store, key string, src storage.Store, b stocklayout.Blob) (string, error) {
	copier, canCopy := dst.(storage.Copier)
	locator, canLocate := src.(storage.Locator)
	if canCopy && canLocate {
		loc, err := locator.Locate(ctx, b.Key)
		if err != nil {
			return "", fmt.Errorf("blob %s: locate %s: %w", b.Digest, b.Key, err)
		}
		_, err = copier.CopyFrom(ctx, key, loc, b.Size)
		if err == nil {
			return CopiedByStore, nil
		}
		if !errors.Is(err, errors.ErrUnsupported) {
			return "", fmt.Errorf("blob %s: %w", b.Digest, err)
		}
	}
	rc, _, err := src.Get(ctx, b.Key, storage.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	defer rc.Close()
	v := b.Digest.Verifier()
	if _, err := dst.Put(ctx, key, io.TeeReader(rc, v), b.Size); err != nil {
		return "", fmt.Errorf("blob %s: copy %s to %s: %w", b.Digest, b.Key, key, err)
	}
	if !v.Verified() {
		_ = dst.Delete(context.WithoutCancel(ctx), key)
		return "", &stocklayout.CorruptError{Key: b.Key, Problem: fmt.Sprintf("its %d bytes do not hash to %s", b.Size, b.Digest)}
	}
	return Streamed, nil
}

// VerifyData rehashes blob b's bytes in src, reading them through buf
// (so memory stays len(buf) whatever the blob's size): a
// *stocklayout.CorruptError when they do not hash to b's digest or are
// not b.Size bytes.
func VerifyData(ctx context.Context, src storage.Store, b stocklayout.Blob, buf []byte) error {
	rc, _, err := src.Get(ctx, b.Key, storage.GetOptions{})
	if err != nil {
		return fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	defer rc.Close()
	v := b.Digest.Verifier()
	n, err := io.CopyBuffer(v, io.LimitReader(rc, b.Size+1), buf)
	if err != nil {
		return fmt.Errorf("blob %s: read %s: %w", b.Digest, b.Key, err)
	}
	if n != b.Size || !v.Verified() {
		return &stocklayout.CorruptError{Key: b.Key, Problem: fmt.Sprintf("%d bytes (want %d) that do not hash to %s", n, b.Size, b.Digest)}
	}
	return nil
}
