package integration

import (
	"testing"

	"github.com/slipway/slipway/integration/internal/harness"
)

// TestConformance runs the OCI distribution-spec conformance suite
// (github.com/opencontainers/distribution-spec/conformance at
// v0.0.0-20260831232431-97274622c111, built by setup.sh) with every API
// workflow enabled (the suite's "dev" profile: spec 1.1 plus upload cancel,
// required Docker-Content-Digest headers and ?tag= on manifest PUT) and its
// default data sets, sha512 and referrers included, and requires zero
// failures, zero errors and no disabled workflow.
//
// The suite's current variables replace the legacy ones (it still maps
// them, with a warning each): OCI_ROOT_URL -> OCI_REGISTRY + OCI_TLS,
// OCI_NAMESPACE -> OCI_REPO1, OCI_CROSSMOUNT_NAMESPACE -> OCI_REPO2,
// OCI_TEST_PULL/PUSH -> OCI_API_PULL/PUSH, OCI_TEST_CONTENT_DISCOVERY ->
// OCI_API_TAGS_LIST + OCI_API_REFERRER, OCI_TEST_CONTENT_MANAGEMENT ->
// OCI_API_{TAGS,MANIFESTS,BLOBS}_DELETE, OCI_DEBUG -> OCI_LOG;
// OCI_HIDE_SKIPPED_WORKFLOWS is gone (skips are always reported).
//
// It runs once per storage backend: a folder (fs), a MinIO bucket with
// blob GETs served by Slipway (s3), and a MinIO bucket with blob GETs
// answered by a 307 to a presigned MinIO URL (s3-redirect). MinIO's answer
// to the redirected GET carries no Docker-Content-Digest header, which the
// dev profile requires of blob GETs, so s3-redirect runs the dev profile
// with OCI_API_BLOBS_DIGEST_HEADER=false (the suite's configAPI.Blobs.
// DigestHeader, `conformance:"DIGEST_HEADER"` under API and BLOBS: the
// header is then checked where present instead of required); every other
// workflow stays on. TestS3Redirect checks the redirect itself. It runs
// on versitygw too (as s3-redirect, same variable), the second S3
// implementation.
//
// SLIPWAY_IT_OCI_VERSION=1.1 selects the plain 1.1 profile instead. Any
// OCI_* variable in the environment overrides ours (for
// example OCI_FILTER_TEST or OCI_LOG=debug).
func TestConformance(t *testing.T) {
	bin := harness.ConformanceBinary(t)
	eachBackend(t, append(allBackends[:len(allBackends):len(allBackends)], versitygwBackend), func(t *testing.T, b backend) {
		var extra []string
		if b.s3 != nil && b.s3.Redirect {
			extra = append(extra, "OCI_API_BLOBS_DIGEST_HEADER=false")
		}
		reg := b.start(t)
		harness.RunConformance(t, bin, reg.Host, reg.User(), b.name, extra)
	})
}
