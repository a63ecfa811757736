package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage"
)

// This file is what `slipway import` (package importer,
// docs/architecture.md §7.5) writes blobs through: the same descriptor,
// link and Protect steps as a push's commit, on data the importer put in
// place itself.

// HasBlob reports whether the registry holds blob d: its descriptor, read
// from the store (a cached one may have been collected since).
func (m *Metadata) HasBlob(ctx context.Context, d digest.Digest) (bool, error) {
	_, err := m.blobFromStore(ctx, d)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// ImportBlob makes the data object dataKey (a fresh key from DataKey,
// size bytes, written by the importer) blob d of repository repo, as a
// push's commit does: descriptor put-if-absent, link, Protect. When the
// registry already holds d, the existing descriptor wins and dataKey is
// deleted (dedupe); created says whether dataKey is now d's data.
func (m *Metadata) ImportBlob(ctx context.Context, repo string, d digest.Digest, dataKey string, size int64) (created bool, err error) {
	bd, err := m.commitBlob(ctx, repo, d, []segment{{Key: dataKey, Size: size}})
	if err != nil {
		return false, err
	}
	return bd.names(dataKey), nil
}

// ImportOutsideBlob makes the object bucketKey of the store's bucket
// (size bytes, the stock registry's data, which stays where it is) blob d
// of repository repo, with the commit ImportBlob does: an outside
// descriptor (docs/architecture.md §7.2) put-if-absent, link, Protect,
// and recovery from a descriptor being collected. When the registry
// already holds d, the existing descriptor wins (dedupe) and nothing is
// dropped: bucketKey is not Slipway's. created says whether this call
// wrote d's descriptor. Reading the blob needs the registry's bucket
// view (Options.BucketView); bucketKey is bucket-absolute.
func (m *Metadata) ImportOutsideBlob(ctx context.Context, repo string, d digest.Digest, bucketKey string, size int64) (created bool, err error) {
	if !storage.ValidKey(bucketKey) {
		return false, fmt.Errorf("outside data of %s: bucket key %q: %w", d, bucketKey, storage.ErrInvalidKey)
	}
	_, created, err = m.commitDescriptor(ctx, repo, d, blobDesc{Outside: bucketKey, Size: size})
	return created, err
}

// DataKey returns a fresh key for a blob's data object, in the key space
// the collector's orphan stage watches (a copy left unnamed by a crash is
// freed there).
func DataKey() string { return dataKey(newObjectID()) }
