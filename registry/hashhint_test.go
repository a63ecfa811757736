package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// replica is one registry of several on one store directory, with its own
// counting view of the store.
type replica struct {
	calls *countingStore
	base  string
}

func hintReplicas(t *testing.T, n int) []replica {
	t.Helper()
	dir := t.TempDir()
	var rs []replica
	for range n {
		cs, _, base := countingEnvOn(t, dir, Options{UploadKey: []byte("shared by the replicas")})
		rs = append(rs, replica{calls: cs, base: base})
	}
	return rs
}

// patched opens a session on r, sends body as one PATCH (docker's way) and
// returns the session's Location before and after the PATCH.
func (r replica) patched(t *testing.T, repo string, body []byte) (opened, after string) {
	t.Helper()
	res := send(t, "POST", r.base+"/v2/"+repo+"/blobs/uploads/", "")
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d", res.StatusCode)
	}
	opened = res.Header.Get("Location")
	res = send(t, "PATCH", r.base+opened, string(body))
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %d", res.StatusCode)
	}
	return opened, res.Header.Get("Location")
}

func putDigest(t *testing.T, base, loc string, d digest.Digest) int {
	t.Helper()
	r := send(t, "PUT", base+withQuery(loc, "digest="+d.String()), "")
	r.Body.Close()
	return r.StatusCode
}

// rereadFirstSegment reports whether calls read a data object back.
func rereadFirstSegment(calls []string) bool { return slices.Contains(calls, "Get data/") }

// docker's PATCH on one replica and PUT on another (a load balancer's
// round robin): the PATCH's Location carries the hash state, so the PUT
// does not read the chunk back; whatever else the URL carries (no hint, a
// tampered one, another session's, one for an object written again)
// falls back to reading the bytes and never commits a wrong digest.
func TestHashHintSparesTheReread(t *testing.T) {
	rs := hintReplicas(t, 2)
	a, b := rs[0], rs[1]
	// The hash state holds the last bytes hashed in clear: the hint must
	// not (URLs end up in access logs).
	tail := []byte("a secret the blob ends with")
	body := append(randomBytes(t, 1<<20), tail...)
	d := digest.FromBytes(body)

	opened, loc := a.patched(t, "app", body)
	_, hint, ok := strings.Cut(loc, "?"+hashHintParam+"=")
	if !ok || uploadID(loc) != uploadID(opened) {
		t.Fatalf("PATCH Location %q: want the session %s with a hash hint", loc, uploadID(opened))
	}
	if raw, err := base64.RawURLEncoding.DecodeString(hint); err != nil || bytes.Contains(raw, tail[len(tail)-20:]) {
		t.Errorf("hint %q (%v): carries the blob's last bytes in clear", hint, err)
	}
	// A status request on the other replica: answered from the hint, and
	// its Location carries a hint again, which the PUT then uses.
	b.calls.take()
	st := send(t, "GET", b.base+loc, "")
	if want := fmt.Sprintf("0-%d", len(body)-1); st.StatusCode != http.StatusNoContent || st.Header.Get("Range") != want {
		t.Fatalf("GET status on the other replica: %d, Range %q, want 204 and %q", st.StatusCode, st.Header.Get("Range"), want)
	}
	if calls := b.calls.take(); rereadFirstSegment(calls) {
		t.Errorf("GET status with the hint read the chunk back: %v", calls)
	}
	loc = st.Header.Get("Location")
	if !strings.Contains(loc, "?"+hashHintParam+"=") {
		t.Fatalf("GET status Location %q: no hash hint", loc)
	}
	if code := putDigest(t, b.base, loc, d); code != http.StatusCreated {
		t.Fatalf("PUT on the other replica: %d", code)
	}
	if calls := b.calls.take(); rereadFirstSegment(calls) {
		t.Errorf("PUT with the hint read the chunk back: %v", calls)
	}
	res := send(t, "GET", a.base+"/v2/app/blobs/"+d.String(), "")
	if res.StatusCode != http.StatusOK || res.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("GET the blob: %d %s", res.StatusCode, res.Header.Get("Docker-Content-Digest"))
	}

	// Round robin's other case: POST on a, PATCH on b, PUT back on a, whose
	// memory still holds the empty session it opened. The stale guess is
	// dropped and the session loaded from the store with the hint.
	res = send(t, "POST", a.base+"/v2/app/blobs/uploads/", "")
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d", res.StatusCode)
	}
	res = send(t, "PATCH", b.base+res.Header.Get("Location"), string(body))
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH on the other replica: %d", res.StatusCode)
	}
	a.calls.take()
	if code := putDigest(t, a.base, res.Header.Get("Location"), d); code != http.StatusCreated {
		t.Fatalf("PUT on the replica that opened the session: %d", code)
	}
	if calls := a.calls.take(); rereadFirstSegment(calls) {
		t.Errorf("PUT on the replica that opened the session read the chunk back: %v", calls)
	}

	// The hint's state is the chunk's: a wrong digest is still refused.
	_, loc = a.patched(t, "app", body)
	if code := putDigest(t, b.base, loc, digest.FromString("other")); code != http.StatusBadRequest {
		t.Errorf("PUT of a wrong digest with the hint: %d, want 400", code)
	}

	fallback := func(step, loc string, want digest.Digest, wantCode int) {
		t.Helper()
		b.calls.take()
		if code := putDigest(t, b.base, loc, want); code != wantCode {
			t.Errorf("%s: PUT %d, want %d", step, code, wantCode)
		}
		if calls := b.calls.take(); !rereadFirstSegment(calls) {
			t.Errorf("%s: the chunk was not read back: %v", step, calls)
		}
	}
	opened, _ = a.patched(t, "app", body)
	fallback("no hint (the POST's Location)", opened, d, http.StatusCreated)

	_, loc = a.patched(t, "app", body)
	i := strings.Index(loc, "=") + 5
	swap := "A"
	if loc[i] == 'A' {
		swap = "B"
	}
	tampered := loc[:i] + swap + loc[i+1:]
	fallback("a tampered hint", tampered, d, http.StatusCreated)

	// Another session's hint, for bytes of the same size.
	other := randomBytes(t, len(body))
	_, otherLoc := a.patched(t, "app", other)
	opened, _ = a.patched(t, "app", body)
	_, otherHint, _ := strings.Cut(otherLoc, "?")
	fallback("another session's hint", opened+"?"+otherHint, d, http.StatusCreated)

	// The hint of an object since written again (same size, other bytes):
	// its ETag changed, so the bytes decide, and they are not d's.
	_, loc = a.patched(t, "app", body)
	key := firstSegmentKey(uploadID(loc))
	ctx, store := context.Background(), a.calls.Store
	if err := store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Put(ctx, key, bytes.NewReader(other), int64(len(other))); err != nil {
		t.Fatal(err)
	}
	fallback("an object written again", loc, d, http.StatusBadRequest)
}

// A second chunk sent to another replica continues from the hinted state;
// the session is then stored with it, and a third replica commits it.
func TestHashHintContinuesOnAnotherReplica(t *testing.T) {
	rs := hintReplicas(t, 3)
	first, second := randomBytes(t, 300<<10), randomBytes(t, 200<<10)
	d := digest.FromBytes(append(slices.Clone(first), second...))

	_, loc := rs[0].patched(t, "app", first)
	rs[1].calls.take()
	req, _ := http.NewRequest("PATCH", rs[1].base+loc, bytes.NewReader(second))
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", len(first), len(first)+len(second)-1))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("second PATCH on another replica: %d", res.StatusCode)
	}
	if calls := rs[1].calls.take(); rereadFirstSegment(calls) {
		t.Errorf("second PATCH read the first chunk back: %v", calls)
	}
	if code := putDigest(t, rs[2].base, res.Header.Get("Location"), d); code != http.StatusCreated {
		t.Fatalf("PUT on a third replica: %d", code)
	}
	if calls := rs[2].calls.take(); rereadFirstSegment(calls) {
		t.Errorf("PUT read a chunk back: %v", calls)
	}
}
