package registry

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/storage/fs"
)

// accountEnv is a replica on dir whose requests name their account in
// X-Account, with the given bounds.
func accountEnv(t *testing.T, dir string, opts Options) *env {
	opts.Account = func(r *http.Request) string { return r.Header.Get("X-Account") }
	return newEnvWith(t, dir, opts)
}

// openWithData starts a session as acct and sends it a first chunk,
// returning the chunk's response and the session's Location.
func (e *env) openWithData(acct string, chunk []byte) (resp, string) {
	e.t.Helper()
	r := e.do("POST", "/v2/repo/blobs/uploads/", nil, "X-Account", acct)
	wantStatus(e.t, r, http.StatusAccepted)
	loc := r.Header.Get("Location")
	return e.do("PATCH", loc, chunk, "X-Account", acct), loc
}

func wantTooMany(t *testing.T, r resp) {
	t.Helper()
	wantError(t, r, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After: %s", r)
	}
}

// TestOpenSessionsCap: an account at its cap of sessions holding data gets
// 429 TOOMANYREQUESTS for another first chunk (nothing stored), other
// accounts do not, and committing or cancelling one frees a slot.
func TestOpenSessionsCap(t *testing.T) {
	e := accountEnv(t, t.TempDir(), Options{MaxOpenPerAccount: 3})
	var locs []string
	for i := range 3 {
		r, loc := e.openWithData("ci", []byte{'a', byte(i)})
		wantStatus(t, r, http.StatusAccepted)
		locs = append(locs, loc)
	}
	r, over := e.openWithData("ci", []byte("over the cap"))
	wantTooMany(t, r)
	wantKeysUnder(t, e.store, "data/"+fanout(uploadID(over))+"/"+uploadID(over))
	// A session without data takes no slot; another account has its own.
	wantStatus(t, e.do("POST", "/v2/repo/blobs/uploads/", nil, "X-Account", "ci"), http.StatusAccepted)
	r, _ = e.openWithData("other", []byte("other account"))
	wantStatus(t, r, http.StatusAccepted)
	// Later chunks of a session that has its slot are not refused.
	r = e.do("PATCH", locs[0], []byte("more"), "X-Account", "ci")
	wantStatus(t, r, http.StatusAccepted)
	locs[0] = r.Header.Get("Location")

	// Committing one frees a slot: the refused session can go on.
	d := digest.FromBytes([]byte{'a', 1})
	wantStatus(t, e.do("PUT", withQuery(locs[1], "digest="+d.String()), nil, "X-Account", "ci"), http.StatusCreated)
	wantStatus(t, e.do("PATCH", over, []byte("over the cap"), "X-Account", "ci"), http.StatusAccepted)
	r, _ = e.openWithData("ci", []byte("again over"))
	wantTooMany(t, r)
	// So does cancelling one.
	wantStatus(t, e.do("DELETE", locs[2], nil, "X-Account", "ci"), http.StatusNoContent)
	r, _ = e.openWithData("ci", []byte("after the cancel"))
	wantStatus(t, r, http.StatusAccepted)
	if n := e.reg.sessions.openSlots("ci"); n != 3 {
		t.Errorf("ci holds %d slots, want 3", n)
	}
}

// TestOpenSessionsCapAcrossReplicas: slots taken on replica A for sessions
// committed or cancelled through replica B are found free in the store
// when A's count reaches the cap; sessions still open stay counted.
func TestOpenSessionsCapAcrossReplicas(t *testing.T) {
	dir := t.TempDir()
	a := accountEnv(t, dir, Options{MaxOpenPerAccount: 4})
	b := accountEnv(t, dir, Options{MaxOpenPerAccount: 4})
	chunk := func(i int) []byte { return []byte{'c', byte(i)} }
	var locs []string
	for i := range 4 {
		r, loc := a.openWithData("ci", chunk(i))
		wantStatus(t, r, http.StatusAccepted)
		locs = append(locs, loc)
	}
	// Through B: commit one (docker's PUT), cancel one, and add a second
	// chunk to one and commit it (its state object is what says so).
	// (Locations are paths: each replica sends them to itself.)
	wantStatus(t, b.do("PUT", withQuery(locs[0], "digest="+digest.FromBytes(chunk(0)).String()), nil, "X-Account", "ci"), http.StatusCreated)
	wantStatus(t, b.do("DELETE", locs[1], nil, "X-Account", "ci"), http.StatusNoContent)
	r := b.do("PATCH", locs[2], []byte("second chunk"), "X-Account", "ci")
	wantStatus(t, r, http.StatusAccepted)
	all := append(chunk(2), "second chunk"...)
	wantStatus(t, b.do("PUT", withQuery(r.Header.Get("Location"), "digest="+digest.FromBytes(all).String()), nil, "X-Account", "ci"), http.StatusCreated)
	b.reg.Wait()
	if n := a.reg.sessions.openSlots("ci"); n != 4 {
		t.Fatalf("A holds %d slots before reaching its cap, want 4 (it learns of B's work only then)", n)
	}

	// At the cap, A asks the store: three slots are free, locs[3] is open.
	for i := range 3 {
		r, _ := a.openWithData("ci", chunk(10+i))
		wantStatus(t, r, http.StatusAccepted)
	}
	r, _ = a.openWithData("ci", chunk(20))
	wantTooMany(t, r)
	if n := a.reg.sessions.openSlots("ci"); n != 4 {
		t.Errorf("A holds %d slots, want 4", n)
	}
}

// TestSessionRate: past its burst an account's new sessions get 429
// TOOMANYREQUESTS until the bucket refills; other accounts are not
// affected.
func TestSessionRate(t *testing.T) {
	e := accountEnv(t, t.TempDir(), Options{SessionRate: 10, SessionBurst: 3})
	post := func(acct string) resp {
		return e.do("POST", "/v2/repo/blobs/uploads/", nil, "X-Account", acct)
	}
	for range 3 {
		wantStatus(t, post("ci"), http.StatusAccepted)
	}
	wantTooMany(t, post("ci"))
	// Mounts and monolithic uploads are session starts too.
	wantTooMany(t, e.do("POST", "/v2/repo/blobs/uploads/?digest="+digest.FromString("x").String(), []byte("x"), "X-Account", "ci"))
	wantStatus(t, post("other"), http.StatusAccepted)
	time.Sleep(150 * time.Millisecond) // one token at 10/s
	wantStatus(t, post("ci"), http.StatusAccepted)
	wantTooMany(t, post("ci"))
}

// TestOpenSessionsStoreRequests: the bounds cost a push no store request
// while an account is under its cap (docker's POST, PATCH, PUT make the
// same calls as TestUploadStoreRequests); at the cap, a slot of a session
// committed through another replica costs the reads that find it done.
func TestOpenSessionsStoreRequests(t *testing.T) {
	dir := t.TempDir()
	replica := func() (*countingStore, string) {
		st, err := fs.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		cs := &countingStore{Store: st}
		reg := New(cs, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			MaxOpenPerAccount: 1, SessionRate: 100, SessionBurst: 100})
		e := gin.New()
		reg.Register(e)
		srv := httptest.NewServer(e)
		t.Cleanup(srv.Close)
		t.Cleanup(reg.Wait)
		return cs, srv.URL
	}
	a, baseA := replica()
	b, baseB := replica()
	push := func(patchOn, putOn, data string) {
		t.Helper()
		r := send(t, "POST", patchOn+"/v2/app/blobs/uploads/", "")
		loc := r.Header.Get("Location")
		if r = send(t, "PATCH", patchOn+loc, data); r.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH: %d", r.StatusCode)
		}
		if r = send(t, "PUT", putOn+loc+"?digest="+digest.FromString(data).String(), ""); r.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %d", r.StatusCode)
		}
	}
	push(baseA, baseA, "one")
	wantCalls(t, "push on A", a.take(), "PutIfAbsent data/", "PutIfAbsent blobs/", "Put repositories/", "PutIfAbsent catalog/")
	// PATCH on A, PUT on B: A keeps the slot, at no cost.
	push(baseA, baseB, "two")
	wantCalls(t, "PATCH on A", a.take(), "PutIfAbsent data/")
	b.take()
	// A is at its cap of 1: the next first chunk asks the store about the
	// slot (no state object; the blob names the chunk: committed).
	push(baseA, baseA, "three")
	wantCalls(t, "push on A at the cap", a.take(), "Get uploads/", "Get blobs/",
		"PutIfAbsent data/", "PutIfAbsent blobs/", "Put repositories/")
}
