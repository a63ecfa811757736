package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/slipway/slipway/storage"
)

// Outside data (docs/architecture.md §7.2): an imported blob whose bytes
// stay where the stock registry wrote them, in the same bucket. Its
// descriptor names a bucket-absolute key in an object,
// {"data":{"bucket_key":key},"size":n}, where every other descriptor has
// a string or segments: a reader that predates the format fails to parse
// it (and so never reads it as an empty blob, nor deletes it as a Slipway
// data key). The key is read through the registry's storage.BucketView
// only; no code path hands it to the store, which prefixes Slipway's root
// and which the collector deletes through.

// descJSON is blobDesc as stored. Data is a JSON string (a Slipway data
// key) or an outsideRef.
type descJSON struct {
	Data     json.RawMessage `json:"data,omitempty"`
	Size     int64           `json:"size"`
	Segments []segment       `json:"segments,omitempty"`
}

type outsideRef struct {
	BucketKey string `json:"bucket_key"`
}

// errNoBucketView: an outside descriptor on a registry whose store gives
// no bucket view (a filesystem store), or whose operator did not pass it.
var errNoBucketView = errors.New("the registry has no bucket view to read it (only an S3 store gives one)")

// MarshalJSON writes the stored form; a descriptor without outside data
// is byte for byte what {"data":…,"size":…,"segments":…} always was.
func (b blobDesc) MarshalJSON() ([]byte, error) {
	j := descJSON{Size: b.Size, Segments: b.Segments}
	var err error
	switch {
	case b.Outside != "" && (b.Data != "" || len(b.Segments) > 0):
		return nil, errors.New("blob descriptor names outside data and segments at once")
	case b.Outside != "":
		j.Data, err = json.Marshal(outsideRef{BucketKey: b.Outside})
	case b.Data != "":
		j.Data, err = json.Marshal(b.Data)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads every stored form. An outside reference must hold a
// non-empty bucket_key and nothing else, and comes without segments: a
// descriptor this release does not fully understand is an error, never a
// guess about which keys are Slipway's.
func (b *blobDesc) UnmarshalJSON(raw []byte) error {
	var j descJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return err
	}
	*b = blobDesc{Size: j.Size, Segments: j.Segments}
	data := bytes.TrimSpace(j.Data)
	switch {
	case len(data) == 0 || string(data) == "null":
		return nil
	case data[0] == '"':
		return json.Unmarshal(data, &b.Data)
	case data[0] != '{':
		return fmt.Errorf("data is %s, neither a data key nor an outside reference", data)
	}
	var ref outsideRef
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ref); err != nil {
		return fmt.Errorf("outside reference %s: %w", data, err)
	}
	if ref.BucketKey == "" || len(j.Segments) > 0 {
		return fmt.Errorf("outside reference %s: want a bucket_key and no segments", data)
	}
	b.Outside = ref.BucketKey
	return nil
}

// outsideReader is what outside data is read through: the bucket view,
// or, without one, a reader whose every Get fails naming the key.
func (m *Metadata) outsideReader() objectReader {
	if m.view == nil {
		return noView{}
	}
	return m.view
}

type noView struct{}

func (noView) Get(_ context.Context, key string, _ storage.GetOptions) (io.ReadCloser, storage.Info, error) {
	return nil, storage.Info{}, fmt.Errorf("blob data %s lies outside Slipway's keys, and %w", key, errNoBucketView)
}

// verifyOutside says what is wrong with a descriptor's outside data, or
// "": it must exist in the bucket with the descriptor's size (the stock
// registry's collector may have deleted it, §7.3).
func (m *Metadata) verifyOutside(ctx context.Context, bd blobDesc) string {
	if m.view == nil {
		return fmt.Sprintf("outside blob data %s: %v", bd.Outside, errNoBucketView)
	}
	info, err := m.view.Stat(ctx, bd.Outside)
	if err != nil {
		return fmt.Sprintf("outside blob data %s missing (%v)", bd.Outside, err)
	}
	if info.Size != bd.Size {
		return fmt.Sprintf("outside blob data %s holds %d bytes, descriptor says %d", bd.Outside, info.Size, bd.Size)
	}
	return ""
}
