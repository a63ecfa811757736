// Package cluster tests Slipway deployed as operators run it: HAProxy
// (round robin per request, no stickiness, health checks on /readyz) in
// front of three replicas sharing the signing key and http.secret, on a
// bucket of a distributed MinIO (four nodes, one drive each, erasure
// coded). Every client talks to HAProxy only. It is its own test binary
// (`make cluster`) so it never runs alongside ./integration/'s tests. See
// integration/README.md.
package cluster

import (
	"os"
	"testing"

	"github.com/slipway/slipway/integration/internal/harness"
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m))
}
