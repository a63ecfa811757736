package promote

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/registry"
)

// checkGates verifies m, held in repo, against the gates of stage st
// before anything is written for its promotion. A refusal is a 409
// gate_failed naming every failing gate; source names the image in it.
func (s *Service) checkGates(ctx context.Context, st config.Stage, source, repo string, m registry.Manifest) ([]GateFailure, Evidence, error) {
	if !s.opts.Gates.Gated(st.Name) {
		return nil, nil, nil
	}
	res, err := s.opts.Gates.Check(ctx, s.meta, st.Name, repo, m)
	if err != nil {
		return nil, nil, storeError(err)
	}
	var fs []GateFailure
	for _, f := range res.Failures {
		fs = append(fs, GateFailure{Source: source, Failure: f})
	}
	return fs, res.Evidence, nil
}

// Evidence is what passed a stage's gates (gate.Result.Evidence).
type Evidence = []gate.Proof

// gateFailed is the 409 for failures (at least one).
func gateFailed(stage string, fs []GateFailure) *Error {
	msgs := make([]string, len(fs))
	for i, f := range fs {
		msgs[i] = fmt.Sprintf("%s: %s", f.Source, f.Message)
	}
	e := errorf(http.StatusConflict, CodeGateFailed, "refused by the gates of %s: %s", stage, strings.Join(msgs, "; "))
	e.Failures = fs
	return e
}
