package storage

import "context"

// Location says where an object is, for a backend that can copy it
// without the bytes passing through this process (Copier). One kind is
// set: Path for a file, Bucket and Object (with Endpoint) for S3. It
// grants nothing: a Copier still needs access of its own.
type Location struct {
	Path string // the object's file (storage/fs)
	// Endpoint (host[:port]), Bucket and Object (the bucket key, root
	// included) of an S3 object.
	Endpoint string
	Bucket   string
	Object   string
}

// Locator is implemented by backends whose objects a Copier may copy:
// Locate says where key is, and reads nothing. It is read-only, so
// ReadOnly forwards it.
type Locator interface {
	Locate(ctx context.Context, key string) (Location, error)
}

// Copier is implemented by backends that can write an object with the
// content of another backend's object without reading it through this
// process (a hard link, a server-side copy). CopyFrom writes key, with
// Put's semantics, from the object at src, which must be size bytes; it
// returns an error wrapping errors.ErrUnsupported when it cannot copy
// between these two places (another filesystem or endpoint, no
// permission), so the caller streams the bytes instead.
type Copier interface {
	CopyFrom(ctx context.Context, key string, src Location, size int64) (Info, error)
}
