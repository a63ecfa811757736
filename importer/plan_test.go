package importer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway/slipway/importer"
	"github.com/slipway/slipway/importer/stocklayout"
	"github.com/slipway/slipway/importer/stocklayout/stocktest"
)

// desc is a JSON descriptor of content stored in st.
func desc(mediaType string, d digest.Digest, size int) string {
	return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mediaType, d, size)
}

// image stores a config and layers as blobs of repo and returns an OCI
// image manifest's bytes naming them (stored by the caller).
func image(st *stocktest.Layout, repo, name string, layers ...string) string {
	cfg := `{"architecture":"amd64","os":"linux","name":"` + name + `"}`
	c := st.Blob(cfg)
	st.Layer(repo, c)
	var ls []string
	for _, l := range layers {
		d := st.Blob(l)
		st.Layer(repo, d)
		ls = append(ls, desc(v1.MediaTypeImageLayerGzip, d, len(l)))
	}
	return `{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageManifest + `","config":` +
		desc(v1.MediaTypeImageConfig, c, len(cfg)) + `,"layers":[` + strings.Join(ls, ",") + `]}`
}

func index(children map[digest.Digest]int) string {
	var ms []string
	for d, n := range children {
		ms = append(ms, desc(v1.MediaTypeImageManifest, d, n))
	}
	slices.Sort(ms)
	return `{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageIndex + `","manifests":[` + strings.Join(ms, ",") + `]}`
}

func plan(t *testing.T, st *stocktest.Layout, repo string) importer.Plan {
	t.Helper()
	l, err := stocklayout.Open(context.Background(), st.Store)
	if err != nil {
		t.Fatal(err)
	}
	p, err := importer.PlanRepository(context.Background(), l, repo)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func manifestOrder(p importer.Plan) []digest.Digest {
	var ds []digest.Digest
	for _, m := range p.Manifests {
		ds = append(ds, m.Digest)
	}
	return ds
}

func TestPlanOrdersChildrenSubjectsAndTags(t *testing.T) {
	st := stocktest.New(t)
	amd := image(st, "app", "amd64", "shared layer", "amd layer")
	arm := image(st, "app", "arm64", "shared layer", "arm layer")
	ia, im := st.Manifest("app", amd), st.Manifest("app", arm)
	idxRaw := index(map[digest.Digest]int{ia: len(amd), im: len(arm)})
	idx := st.Manifest("app", idxRaw)
	sbom := st.Blob("sbom")
	st.Layer("app", sbom)
	empty := st.Blob("{}")
	st.Layer("app", empty)
	refRaw := `{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageManifest + `","artifactType":"application/spdx+json","config":` +
		desc(v1.DescriptorEmptyJSON.MediaType, empty, 2) + `,"layers":[` + desc("application/spdx+json", sbom, 4) +
		`],"subject":` + desc(v1.MediaTypeImageIndex, idx, len(idxRaw)) + `}`
	// A referrer whose digest sorts before its subject's, so that only
	// the subject rule, not the listing order, puts it after the subject.
	for i := 0; digest.FromString(refRaw) > idx; i++ {
		refRaw = strings.Replace(refRaw, `"artifactType"`, fmt.Sprintf(`"annotations":{"n":"%d"},"artifactType"`, i), 1)
	}
	ref := st.Manifest("app", refRaw)
	st.Tag("app", "1.0", idx)
	st.Tag("app", "amd", ia)
	orphan := st.Blob("pushed, never referenced")
	st.Layer("app", orphan)

	p := plan(t, st, "app")
	if len(p.Problems) != 0 {
		t.Fatalf("problems: %v", p.Problems)
	}
	order := manifestOrder(p)
	pos := func(d digest.Digest) int { return slices.Index(order, d) }
	if len(order) != 4 || pos(ia) < 0 || pos(im) < 0 || pos(idx) < pos(ia) || pos(idx) < pos(im) || pos(ref) < pos(idx) {
		t.Fatalf("manifest order %v: want children %s %s before index %s before referrer %s", order, ia, im, idx, ref)
	}
	for _, m := range p.Manifests {
		if m.Digest == idx && (m.MediaType != v1.MediaTypeImageIndex || string(m.Raw) != idxRaw) {
			t.Fatalf("index planned as %q %q", m.MediaType, m.Raw)
		}
	}
	if len(p.Blobs) != 7 { // 2 configs, shared + amd + arm layers, empty config, sbom
		t.Fatalf("want 7 blobs, each once, got %v", p.Blobs)
	}
	if !slices.IsSortedFunc(p.Blobs, func(a, b stocklayout.Blob) int { return strings.Compare(string(a.Digest), string(b.Digest)) }) {
		t.Fatalf("blobs not in digest order: %v", p.Blobs)
	}
	for _, b := range p.Blobs {
		if b.Key != stocklayout.BlobKey(b.Digest) || b.Size <= 0 {
			t.Fatalf("blob %+v", b)
		}
	}
	wantTags := []stocklayout.Tag{{Name: "1.0", Digest: idx}, {Name: "amd", Digest: ia}}
	if !slices.Equal(p.Tags, wantTags) {
		t.Fatalf("tags %v, want %v", p.Tags, wantTags)
	}
	if !slices.Equal(p.Unreferenced, []digest.Digest{orphan}) {
		t.Fatalf("unreferenced %v, want %v", p.Unreferenced, orphan)
	}
}

func TestPlanSkipsWhatNeedsAMissingOrWrongBlob(t *testing.T) {
	st := stocktest.New(t)
	good := image(st, "app", "good", "g")
	gd := st.Manifest("app", good)
	broken := image(st, "app", "broken", "lost layer")
	bd := st.Manifest("app", broken)
	lost := digest.FromString("lost layer")
	if err := st.Store.Delete(context.Background(), stocklayout.BlobKey(lost)); err != nil {
		t.Fatal(err)
	}
	idx := st.Manifest("app", index(map[digest.Digest]int{gd: len(good), bd: len(broken)}))
	lying := strings.Replace(image(st, "app", "lying", "l"), `"size":1}`, `"size":2}`, 1)
	ld := st.Manifest("app", lying)
	st.Manifest("app", index(map[digest.Digest]int{gd: len(good) + 1}))
	st.Tag("app", "good", gd)
	st.Tag("app", "multi", idx)
	st.Tag("app", "lying", ld)
	st.Tag("app", "nowhere", digest.FromString("not a revision"))

	p := plan(t, st, "app")
	if order := manifestOrder(p); !slices.Equal(order, []digest.Digest{gd}) {
		t.Fatalf("planned %v, want only %s", order, gd)
	}
	if !slices.Equal(p.Tags, []stocklayout.Tag{{Name: "good", Digest: gd}}) {
		t.Fatalf("tags %v", p.Tags)
	}
	msgs := make([]string, len(p.Problems))
	for i, e := range p.Problems {
		var se *importer.SkippedError
		if !errors.As(e, &se) {
			t.Fatalf("problem %v is not a SkippedError", e)
		}
		msgs[i] = e.Error()
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"manifest app@" + string(bd) + " is not imported: blob " + string(lost) + " has no data",
		stocklayout.BlobKey(lost),
		"manifest app@" + string(idx) + " is not imported: its child " + string(bd) + " is not imported",
		"manifest app@" + string(ld) + " is not imported: it declares blob",
		"tag app:multi is not imported: it names " + string(idx) + ", which is not imported",
		"tag app:lying is not imported",
		"it declares child " + string(gd) + " of " + fmt.Sprint(len(good)+1) + " bytes",
		"tag app:nowhere is not imported: it names " + string(digest.FromString("not a revision")) + ", not a manifest of the repository",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if len(p.Problems) != 7 {
		t.Fatalf("want 7 problems, got\n%s", all)
	}
}

func TestPlanSkipsCorruptManifests(t *testing.T) {
	st := stocktest.New(t)
	ok := st.Manifest("app", image(st, "app", "ok", "x"))
	v1m := st.Manifest("app", `{"schemaVersion":1,"name":"app","tag":"old","fsLayers":[]}`)
	tampered := st.Manifest("app", image(st, "app", "t", "y"))
	st.Put(stocklayout.BlobKey(tampered), []byte(`{"schemaVersion":2}`))
	p := plan(t, st, "app")
	if order := manifestOrder(p); !slices.Equal(order, []digest.Digest{ok}) {
		t.Fatalf("planned %v, want only %s", order, ok)
	}
	all := fmt.Sprint(p.Problems)
	if !strings.Contains(all, string(v1m)) || !strings.Contains(all, "schema version 1") ||
		!strings.Contains(all, stocklayout.BlobKey(tampered)) || len(p.Problems) != 2 {
		t.Fatalf("problems: %v", p.Problems)
	}
	if !errors.Is(p.Problems[0], stocklayout.ErrCorrupt) && !errors.Is(p.Problems[1], stocklayout.ErrCorrupt) {
		t.Fatalf("the tampered manifest should be a corrupt object: %v", p.Problems)
	}
}

func TestMediaType(t *testing.T) {
	for raw, want := range map[string]string{
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}`:      "application/vnd.docker.distribution.manifest.v2+json",
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}`: "application/vnd.docker.distribution.manifest.list.v2+json",
		`{"schemaVersion":2,"config":{},"layers":[]}`:                                                 v1.MediaTypeImageManifest,
		`{"schemaVersion":2,"manifests":[]}`:                                                          v1.MediaTypeImageIndex,
		`{"schemaVersion":2,"manifests":null}`:                                                        v1.MediaTypeImageManifest,
		`{"schemaVersion":1}`:                                                                         "",
		`{"schemaVersion":2,"mediaType":"text/plain"}`:                                                "",
		`not json`: "",
	} {
		got, err := importer.MediaType([]byte(raw))
		if got != want || (err == nil) != (want != "") {
			t.Errorf("MediaType(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
}
