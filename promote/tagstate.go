package promote

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

// tagState is a target tag as the engine reads it: the registry's state
// and Seq, the chain position of the ledger record whose write the tag
// holds (0 when the ledger did not write it: a push, a carried cosign tag,
// or no tag at all).
//
// The ledger keeps Seq in the tag object itself, as the stamp the registry
// stores opaquely after the digest ("<digest>\n<seq>\n"); commit explains
// why it must be in the tag's bytes. A /v2/ push writes "<digest>" (Seq 0).
type tagState struct {
	registry.TagState
	Seq int64
}

// seqStamp is the stamp of the tag write of record seq.
func seqStamp(seq int64) string { return strconv.FormatInt(seq, 10) }

// seqOf reads the chain position a tag's stamp records ("": 0).
func seqOf(st registry.TagState) (int64, error) {
	if st.Stamp == "" {
		return 0, nil
	}
	seq, err := strconv.ParseInt(st.Stamp, 10, 64)
	if err != nil || seq < 0 {
		return 0, fmt.Errorf("bad sequence number %q", st.Stamp)
	}
	return seq, nil
}

// tagState reads the target tag; a missing tag is exists=false.
func (s *Service) tagState(ctx context.Context, repo, tag string) (tagState, bool, error) {
	st, err := s.meta.Tag(ctx, repo, tag)
	if errors.Is(err, storage.ErrNotFound) {
		return tagState{}, false, nil
	}
	if err != nil {
		return tagState{}, false, err
	}
	seq, err := seqOf(st)
	if err != nil {
		return tagState{}, false, fmt.Errorf("tag %s:%s is corrupt: %w", repo, tag, err)
	}
	return tagState{TagState: st, Seq: seq}, true, nil
}
