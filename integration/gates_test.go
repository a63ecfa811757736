package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway/slipway/gate"
	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/promote"
)

// Gate settings of TestPromotionGates: production needs a signature by
// ci-2026, a SLSA provenance attestation signed by it, and a test report
// that passed.
const (
	gateKeyName    = "ci-2026"
	gateProvenance = "https://slsa.dev/provenance/v0.2"
	gateReportType = "application/vnd.slipway.test-report"
)

// gateStages is the stages section: staging → production, production
// gated by the key in pubFile.
func gateStages(pubFile string) string {
	return fmt.Sprintf(`stages:
  - name: staging
    prefix: staging/
  - name: production
    prefix: production/
    promote_from: [staging]
    immutable: true
    gates:
      signed_by:
        - name: %s
          key_file: %q
      attestations: [%q]
      referrers:
        - artifact_type: %q
          annotations:
            result: passed
`, gateKeyName, pubFile, gateProvenance, gateReportType)
}

// cosignTool runs cosign offline: keys without a password, no
// transparency log, plain HTTP to the test registry.
type cosignTool struct {
	t     *testing.T
	tools *harness.Tools
}

func (c cosignTool) run(env []string, args ...string) string {
	c.t.Helper()
	return c.tools.RunCmd(harness.Cmd{Args: append([]string{"cosign"}, args...), Env: append([]string{"COSIGN_PASSWORD="}, env...)})
}

// keyPair makes <prefix>.key and <prefix>.pub in the tools' folder and
// returns their paths.
func (c cosignTool) keyPair(prefix string) (key, pub string) {
	c.t.Helper()
	c.run(nil, "generate-key-pair", "--output-key-prefix", prefix)
	return filepath.Join(c.tools.Dir, prefix+".key"), filepath.Join(c.tools.Dir, prefix+".pub")
}

// sign signs ref (repo@digest) with key; referrers stores the signature as
// an OCI 1.1 referrer instead of the sha256-<hex>.sig tag.
func (c cosignTool) sign(key, ref string, referrers bool) {
	c.t.Helper()
	args := []string{"sign", "--key", key, "--tlog-upload=false", "--allow-http-registry", "-y"}
	var env []string
	if referrers {
		args = append(args, "--registry-referrers-mode=oci-1-1")
		env = append(env, "COSIGN_EXPERIMENTAL=1")
	}
	c.run(env, append(args, ref)...)
}

// attest attaches a signed SLSA provenance attestation to ref; bundle
// stores it as a sigstore bundle referrer (cosign attest has no
// --registry-referrers-mode; --new-bundle-format is how it uses referrers)
// instead of the sha256-<hex>.att tag.
func (c cosignTool) attest(key, ref string, bundle bool) {
	c.t.Helper()
	pred := filepath.Join(c.tools.Dir, "provenance.json")
	if err := os.WriteFile(pred, []byte(`{"builder":{"id":"https://ci.example/builder"},"buildType":"https://ci.example/build"}`), 0o644); err != nil {
		c.t.Fatal(err)
	}
	args := []string{"attest", "--key", key, "--type", "slsaprovenance", "--predicate", pred, "--tlog-upload=false", "--allow-http-registry", "-y"}
	if bundle {
		args = append(args, "--new-bundle-format")
	}
	c.run(nil, append(args, ref)...)
}

// attachReport attaches a test report to ref with oras.
func attachReport(t *testing.T, tools *harness.Tools, ref, result string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(tools.Dir, "report.json"), []byte(`{"tests":42,"failed":0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tools.Run("oras", "attach", "--plain-http", "--distribution-spec", "v1.1-referrers-api",
		"--artifact-type", gateReportType, "--annotation", "result="+result, ref, "report.json:application/json")
}

// TestPromotionGates: production's gates, with evidence made by the real
// cosign (tag scheme and OCI 1.1 referrers) and oras. Refused without
// evidence, with a signature by another key, with a signature over another
// digest, with a tampered signature payload, without the attestation, with
// a report that failed; allowed with the right evidence, which the ledger
// record names and which travels into production.
func TestPromotionGates(t *testing.T) {
	tools := harness.NewTools(t)
	cs := cosignTool{t, tools}
	key, pub := cs.keyPair("ci")
	otherKey, _ := cs.keyPair("other")
	reg := harness.StartOpts(t, harness.Options{S3: &harness.S3{}, ExtraConfig: gateStages(pub)})
	tools.CraneLogin(reg.Host, reg.Admin())
	tools.OrasLogin(reg.Host, reg.Admin())
	api := client(reg, reg.Admin())
	ctx := context.Background()

	// push writes a fresh image to staging/app:<tag> and returns
	// "host/staging/app@sha256:…" and the digest.
	push := func(tag string) (string, string) {
		t.Helper()
		img := ociImage(t, 2, 4<<10, v1.Platform{OS: "linux", Architecture: "amd64"})
		if err := remote.Write(parseRef(t, reg.Ref("staging/app:"+tag)), img, as(reg.Admin())); err != nil {
			t.Fatal(err)
		}
		d := mustDigest(t, img).String()
		return reg.Ref("staging/app@" + d), d
	}
	// refused promotes staging/app:<tag> and wants a 409 gate_failed
	// whose failures include one of gate g mentioning every want.
	refused := func(tag, g string, want ...string) *promote.Error {
		t.Helper()
		_, _, err := api.Promote(ctx, promote.Request{Source: "staging/app:" + tag, To: "production"})
		var pe *promote.Error
		if !errors.As(err, &pe) || pe.Status != 409 || pe.Code != promote.CodeGateFailed {
			t.Fatalf("promote %s: got %v, want 409 gate_failed", tag, err)
		}
		for _, f := range pe.Failures {
			if f.Gate != g {
				continue
			}
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(f.Message, w)
			}
			if ok {
				if f.Source != "staging/app:"+tag {
					t.Errorf("failure names source %q, want staging/app:%s", f.Source, tag)
				}
				return pe
			}
		}
		t.Fatalf("promote %s: no %s failure mentioning %q among %+v", tag, g, want, pe.Failures)
		return nil
	}
	// complete adds what a gate needs except what skip names.
	complete := func(ref string, skip ...string) {
		t.Helper()
		has := func(s string) bool {
			for _, x := range skip {
				if x == s {
					return true
				}
			}
			return false
		}
		if !has("attestation") {
			cs.attest(key, ref, false)
		}
		if !has("report") {
			attachReport(t, tools, ref, "passed")
		}
	}

	t.Run("no evidence", func(t *testing.T) {
		_, d := push("bare")
		pe := refused("bare", "signed_by", "no signature", gateKeyName, d)
		refusedGates := map[string]bool{}
		for _, f := range pe.Failures {
			refusedGates[f.Gate] = true
		}
		for _, g := range []string{"signed_by", "attestations", "referrers"} {
			if !refusedGates[g] {
				t.Errorf("gate %s not among the failures %+v", g, pe.Failures)
			}
		}
		// The CLI prints each failure.
		out, err := cli(t, tools, reg, reg.Admin(), "promote", "staging/app:bare", "--to", "production")
		if err == nil || !strings.Contains(out, "409 gate_failed") || !strings.Contains(out, "staging/app:bare [signed_by]: no signature by key "+gateKeyName) ||
			!strings.Contains(out, "[attestations]") || !strings.Contains(out, "[referrers]") {
			t.Errorf("slipway promote without evidence: err %v, output:\n%s", err, out)
		}
		checkNotInProduction(t, reg, "bare")
	})

	t.Run("other key", func(t *testing.T) {
		ref, _ := push("otherkey")
		cs.sign(otherKey, ref, false)
		complete(ref)
		refused("otherkey", "signed_by", gateKeyName)
		checkNotInProduction(t, reg, "otherkey")
	})

	t.Run("signature over another digest", func(t *testing.T) {
		ref, d := push("otherdigest")
		other, od := push("otherdigest-decoy")
		cs.sign(key, other, false)
		complete(ref)
		// The decoy's valid signature, filed under this digest's tag.
		tools.Run("crane", "copy", "--insecure", reg.Ref("staging/app:"+sigTag(od)), reg.Ref("staging/app:"+sigTag(d)))
		refused("otherdigest", "signed_by", gateKeyName)
		checkNotInProduction(t, reg, "otherdigest")
	})

	t.Run("tampered payload", func(t *testing.T) {
		ref, d := push("tampered")
		cs.sign(key, ref, false)
		complete(ref)
		tamper(t, reg, "staging/app:"+sigTag(d))
		refused("tampered", "signed_by", gateKeyName)
		checkNotInProduction(t, reg, "tampered")
	})

	t.Run("no attestation", func(t *testing.T) {
		ref, _ := push("noatt")
		cs.sign(key, ref, false)
		complete(ref, "attestation")
		refused("noatt", "attestations", gateProvenance)
		checkNotInProduction(t, reg, "noatt")
	})

	t.Run("attestation by another key", func(t *testing.T) {
		ref, _ := push("otheratt")
		cs.sign(key, ref, false)
		cs.attest(otherKey, ref, false)
		attachReport(t, tools, ref, "passed")
		refused("otheratt", "attestations", gateProvenance)
		checkNotInProduction(t, reg, "otheratt")
	})

	t.Run("failed report", func(t *testing.T) {
		ref, _ := push("failedreport")
		cs.sign(key, ref, false)
		complete(ref, "report")
		attachReport(t, tools, ref, "failed")
		refused("failedreport", "referrers", gateReportType)
		checkNotInProduction(t, reg, "failedreport")
	})

	var goodDigest string
	for _, mode := range []struct {
		name      string
		referrers bool
		via       string
	}{{"tag scheme", false, "tag"}, {"referrers", true, "referrers"}} {
		t.Run("allowed/"+mode.name, func(t *testing.T) {
			tag := "good-" + strings.ReplaceAll(mode.name, " ", "")
			ref, d := push(tag)
			if !mode.referrers {
				goodDigest = d
			}
			cs.sign(key, ref, mode.referrers)
			cs.attest(key, ref, mode.referrers)
			attachReport(t, tools, ref, "passed")
			rec, created, err := api.Promote(ctx, promote.Request{Source: "staging/app:" + tag, To: "production"})
			if err != nil || !created {
				t.Fatalf("promote with the right evidence: created %v, err %v", created, err)
			}
			if rec.Digest.String() != d {
				t.Fatalf("record digest %s, pushed %s", rec.Digest, d)
			}
			kinds := map[string]gate.Proof{}
			for _, p := range rec.Evidence {
				kinds[p.Kind] = p
			}
			for _, k := range []string{gate.KindSignature, gate.KindAttestation} {
				p, ok := kinds[k]
				if !ok || p.KeyID != gateKeyName || p.Via != mode.via || p.Subject.String() != d {
					t.Errorf("record evidence has no %s by %s via %s over %s: %+v", k, gateKeyName, mode.via, d, rec.Evidence)
				}
			}
			if p, ok := kinds[gate.KindReferrer]; !ok || p.Type != gateReportType {
				t.Errorf("record evidence has no %s referrer: %+v", gateReportType, rec.Evidence)
			}
			// The ledger keeps it.
			page, err := api.History(ctx, promote.Query{Repository: "production/app", Tag: tag})
			if err != nil || len(page.Records) != 1 || page.Records[0].ID != rec.ID || len(page.Records[0].Evidence) != len(rec.Evidence) {
				t.Errorf("ledger of production/app:%s: %+v, err %v; want record %s with its evidence", tag, page.Records, err, rec.ID)
			}
			// The evidence travels with the image: production verifies too
			// (a rollback into production is gated on what it holds).
			desc, err := remote.Get(parseRef(t, reg.Ref("production/app:"+tag)), as(reg.Admin()))
			if err != nil || desc.Digest.String() != d {
				t.Fatalf("production/app:%s: %v %v", tag, desc, err)
			}
			if !mode.referrers {
				if _, err := remote.Head(parseRef(t, reg.Ref("production/app:"+sigTag(d))), as(reg.Admin())); err != nil {
					t.Errorf("the signature tag did not travel into production: %v", err)
				}
			}
			if !mode.referrers {
				out := tools.Run("cosign", "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", reg.Ref("production/app@"+d))
				if !strings.Contains(out, d) {
					t.Errorf("cosign verify in production does not name %s:\n%s", d, out)
				}
			}
		})
	}

	// A release of three images where the third fails its gates: nothing
	// moves; then the two that pass move together, as one release.
	t.Run("release", func(t *testing.T) {
		before, err := api.History(ctx, promote.Query{Repository: "production/app"})
		if err != nil {
			t.Fatal(err)
		}
		out, err := cli(t, tools, reg, reg.Admin(), "release", "create", "--to", "production",
			"staging/app:good-tagscheme=rel-a", "staging/app:good-referrers=rel-b", "staging/app:bare=rel-c")
		if err == nil || !strings.Contains(out, "409 gate_failed") || !strings.Contains(out, "staging/app:bare [signed_by]") ||
			strings.Contains(out, "staging/app:good-") {
			t.Fatalf("release with an ungated member: err %v, output:\n%s", err, out)
		}
		for _, tag := range []string{"rel-a", "rel-b", "rel-c"} {
			checkNotInProduction(t, reg, tag)
		}
		after, err := api.History(ctx, promote.Query{Repository: "production/app"})
		if err != nil || len(after.Records) != len(before.Records) {
			t.Fatalf("ledger of production/app: %d records before, %d after a refused release (%v)", len(before.Records), len(after.Records), err)
		}
		out, err = cli(t, tools, reg, reg.Admin(), "release", "create", "--to", "production", "--json",
			"staging/app:good-tagscheme=rel-a", "staging/app:good-referrers=rel-b")
		if err != nil {
			t.Fatalf("release of the two signed images: %v\n%s", err, out)
		}
		var rel promote.Release
		decodeJSON(t, out, &rel)
		if rel.State != promote.ReleaseComplete || len(rel.Members) != 2 {
			t.Fatalf("release = %+v", rel)
		}
		for _, m := range rel.Members {
			if m.Release != rel.ID || len(m.Evidence) < 3 {
				t.Errorf("member %s: release %q, evidence %+v", m.Target, m.Release, m.Evidence)
			}
			desc, err := remote.Head(parseRef(t, reg.Ref(m.Target)), as(reg.Admin()))
			if err != nil || desc.Digest.String() != m.Digest.String() {
				t.Errorf("%s after the release: %v %v, want %s", m.Target, desc, err, m.Digest)
			}
		}
	})

	// The admin pages of the same server show the real verdicts: the
	// staging table's badges and the evidence page with the key id.
	t.Run("admin pages", func(t *testing.T) {
		if goodDigest == "" {
			t.Fatal("no allowed promotion to look at")
		}
		b := newBrowser(t)
		signInAsAdmin(t, b, reg)
		pageRun(t, b, "opening staging/app",
			chromedp.Navigate(reg.URL()+"/admin/repositories/app"),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-tag="good-tagscheme"] .gate`)))
		wantText(t, b, "✓ production gates", "✗ production: signed_by, attestations, referrers")
		pageRun(t, b, "opening the evidence page",
			chromedp.Navigate(reg.URL()+"/admin/repositories/staging/app/digests/"+goodDigest),
			chromedp.WaitVisible(chromedp.CSS("#proofs")))
		wantText(t, b, gateKeyName, "signature", "attestation", gateProvenance)
	})
}

// sigTag is cosign's signature tag for digest d.
func sigTag(d string) string { return strings.Replace(d, ":", "-", 1) + ".sig" }

// checkNotInProduction fails unless production/app:<tag> does not exist.
func checkNotInProduction(t *testing.T, reg *harness.Registry, tag string) {
	t.Helper()
	if _, err := remote.Head(parseRef(t, reg.Ref("production/app:"+tag)), as(reg.Admin())); err == nil {
		t.Errorf("production/app:%s exists after a refused promotion", tag)
	}
}

// tamper rewrites the cosign signature manifest under repoTag: its
// payload layer is replaced by the same JSON with one field added, and the
// manifest names the new layer's digest and size, so only the signature
// can catch it.
func tamper(t *testing.T, reg *harness.Registry, repoTag string) {
	t.Helper()
	ref := parseRef(t, reg.Ref(repoTag))
	desc, err := remote.Get(ref, as(reg.Admin()))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	layers, _ := m["layers"].([]any)
	if len(layers) == 0 {
		t.Fatalf("signature manifest %s has no layers: %s", repoTag, desc.Manifest)
	}
	first := layers[0].(map[string]any)
	repo := ref.Context()
	h, err := v1.NewHash(first["digest"].(string))
	if err != nil {
		t.Fatal(err)
	}
	layer, err := remote.Layer(repo.Digest(h.String()), as(reg.Admin()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	var payload bytes.Buffer
	_, err = payload.ReadFrom(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(payload.Bytes(), &p); err != nil {
		t.Fatalf("signature payload is not JSON: %v", err)
	}
	p["optional"] = map[string]any{"tampered": "yes"}
	changed, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	forged := static.NewLayer(changed, types.MediaType(first["mediaType"].(string)))
	if err := remote.WriteLayer(repo, forged, as(reg.Admin())); err != nil {
		t.Fatal(err)
	}
	fd, _ := forged.Digest()
	first["digest"], first["size"] = fd.String(), len(changed)
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(ref, rawManifest{raw: raw, mt: desc.MediaType}, as(reg.Admin())); err != nil {
		t.Fatal(err)
	}
}

// rawManifest is manifest bytes for remote.Put.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }
