package integration

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/integration/internal/harness"
	"github.com/slipway/slipway/internal/trickle"
)

// Issue 10, finding 3, black-box: 50 connections to the routes that are
// not blob uploads send their bodies a space every 300 ms. Each must be
// answered and closed within http.body_timeout (plus a margin for a loaded
// machine); requests the server refuses without their body (no or bad
// credentials) at once. Before the fix all 50 stayed open.
func TestTricklingBodiesAreCutOff(t *testing.T) {
	const bodyTimeout, margin = 2 * time.Second, 2 * time.Second
	reg := harness.StartOpts(t, harness.Options{HTTPConfig: fmt.Sprintf("  body_timeout: %s\n", bodyTimeout)})
	if harness.IsStock() {
		t.Skip("http.body_timeout is Slipway's")
	}
	adm := reg.Admin()
	adminAuth := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(adm.Username+":"+adm.Password))
	form := "Content-Type: application/x-www-form-urlencoded"
	jsonCT := "Content-Type: application/json"
	routes := []struct {
		method, path string
		hdr          []string
		refused      bool // answered without waiting for the body
	}{
		{"POST", "/auth/token", []string{form}, false},
		{"POST", "/admin/login", []string{form}, false},
		{"POST", "/api/v1/promotions", []string{jsonCT, adminAuth}, false},
		{"POST", "/api/v1/robots", []string{jsonCT, adminAuth}, false},
		{"POST", "/api/v1/robots", []string{jsonCT}, true},
		{"PUT", "/v2/it/slow/manifests/1.0", []string{"Content-Type: application/vnd.oci.image.manifest.v1+json"}, true},
		{"PATCH", "/v2/it/slow/blobs/uploads/someid", []string{"Content-Type: application/octet-stream"}, true},
		{"PUT", "/v2/it/slow/blobs/uploads/someid?digest=sha256:" + strings.Repeat("0", 64), nil, true},
	}
	const conns = 50
	type result struct {
		route int
		trickle.Result
	}
	results := make([]result, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			rt := routes[i%len(routes)]
			got, err := trickle.Send(reg.Host, rt.method, rt.path, i%2 == 1, 300*time.Millisecond, 3*(bodyTimeout+margin), rt.hdr...)
			if err != nil {
				t.Error(err)
			}
			results[i] = result{i % len(routes), got}
		})
	}
	wg.Wait()
	var worst time.Duration
	for i, r := range results {
		rt := routes[r.route]
		bound := bodyTimeout + margin
		if rt.refused {
			bound = margin
		}
		if r.Closed < 0 || r.Closed > bound {
			t.Errorf("connection %d (%s %s): answer %d after %s, closed after %s (-1: still open); want closed within %s",
				i, rt.method, rt.path, r.Status, r.Answered, r.Closed, bound)
		}
		if rt.refused && r.Status/100 != 4 {
			t.Errorf("connection %d (%s %s): answer %d, want a refusal", i, rt.method, rt.path, r.Status)
		}
		worst = max(worst, r.Closed)
	}
	t.Logf("%d trickling connections, all closed; the last after %s (body_timeout %s)", conns, worst, bodyTimeout)

	// The server serves on, and a slow but steady blob upload still
	// succeeds, past body_timeout.
	client := harness.NewClient(reg.User())
	resp := do(t, client, http.MethodPost, reg.URL()+"/v2/it/slow/blobs/uploads/", nil, nil, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	if strings.HasPrefix(loc, "/") {
		loc = reg.URL() + loc
	}
	blob := []byte(strings.Repeat("slow but steady ", 4<<10)) // 64 KiB
	dgst := fmt.Sprintf("sha256:%x", sha256.Sum256(blob))
	pr, pw := io.Pipe()
	go func() {
		for b := blob; len(b) > 0; b = b[8<<10:] {
			time.Sleep(bodyTimeout / 6)
			if _, err := pw.Write(b[:8<<10]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPatch, loc, pr)
	req.Header.Set("Content-Type", "application/octet-stream")
	began := time.Now()
	presp, err := client.Do(req)
	if err != nil {
		t.Fatalf("slow PATCH: %v", err)
	}
	presp.Body.Close()
	if presp.StatusCode != http.StatusAccepted {
		t.Fatalf("slow PATCH: %s", presp.Status)
	}
	if took := time.Since(began); took <= bodyTimeout {
		t.Fatalf("the slow PATCH took %s, not past body_timeout %s: it proves nothing", took, bodyTimeout)
	}
	if l := presp.Header.Get("Location"); l != "" {
		loc = l
		if strings.HasPrefix(loc, "/") {
			loc = reg.URL() + loc
		}
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	do(t, client, http.MethodPut, loc+sep+"digest="+dgst, nil, nil, http.StatusCreated)
	if got := do(t, client, http.MethodGet, reg.URL()+"/v2/it/slow/blobs/"+dgst, nil, nil, http.StatusOK); string(got.body) != string(blob) {
		t.Fatal("the slowly uploaded blob reads back different")
	}
}
