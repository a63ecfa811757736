// Package integration runs real clients (docker, containerd's ctr, crane,
// skopeo, oras, regctl, the OCI conformance suite, go-containerregistry) against a
// real Slipway process, or against the stock distribution registry with
// SLIPWAY_IT_REGISTRY=stock. Install the clients first:
// integration/scripts/setup.sh. See integration/README.md.
package integration

import (
	"os"
	"testing"

	"github.com/slipway/slipway/integration/internal/harness"
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m))
}
