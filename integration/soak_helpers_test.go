package integration

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/integration/internal/harness"
)

// This file holds the soak's instruments: a transport that records every
// exchange with the operation it belongs to, a memory sampler for the
// replicas, and a webhook receiver.

// soakOpKey carries the soak operation a request belongs to in its
// context (go-containerregistry passes the context down to every request,
// token fetches included).
type soakOpKey struct{}

func withSoakOp(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, soakOpKey{}, op)
}

func soakOpOf(ctx context.Context) string {
	op, _ := ctx.Value(soakOpKey{}).(string)
	return op
}

// exchange is one HTTP request a soak client sent and what came back.
type exchange struct {
	op    string // soak operation (push, pull, ...)
	route string // "GET manifest", "PATCH upload", ...
	// status is the HTTP status; 0 when no response came (connection
	// refused or cut).
	status int
	err    string
	// proxyErr: the load balancer answered 502 itself, because the replica
	// it picked gave no response.
	proxyErr bool
	// canceled: the client gave up on the request itself (go-containerregistry
	// cancels a push's other requests when one fails).
	canceled   bool
	start, end time.Time
}

func (e exchange) key() string { return e.op + " " + e.route }

// recorder is the soak clients' transport: it records every exchange.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	ex   []exchange
}

func newRecorder() *recorder {
	return &recorder{base: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := r.base.RoundTrip(req)
	e := exchange{op: soakOpOf(req.Context()), route: req.Method + " " + soakRoute(req.URL.Path), start: start, end: time.Now()}
	if req.URL.Scheme == "https" {
		// go-containerregistry tries https first on an insecure registry;
		// the plain-HTTP listener refuses the handshake and it falls back.
		e.route = req.Method + " https-probe"
	}
	if err != nil {
		e.err = err.Error()
		e.canceled = errors.Is(err, context.Canceled)
	} else {
		e.status = resp.StatusCode
		if h := resp.Header.Get(harness.ProxyErrorHeader); h != "" {
			e.proxyErr, e.err = true, h
		}
	}
	r.mu.Lock()
	r.ex = append(r.ex, e)
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) exchanges() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ex)
}

// soakRoute names the kind of resource a path is.
func soakRoute(p string) string {
	switch {
	case p == "/v2/" || p == "/v2":
		return "ping"
	case p == "/auth/token":
		return "token"
	case strings.HasPrefix(p, "/api/v1/promotions"):
		return "promotion"
	case strings.Contains(p, "/blobs/uploads/"):
		return "upload"
	case strings.Contains(p, "/blobs/"):
		return "blob"
	case strings.Contains(p, "/manifests/"):
		return "manifest"
	case strings.HasSuffix(p, "/tags/list"):
		return "tags"
	}
	return p
}

// soakExpected are the statuses a healthy registry answers the soak's
// requests with, by route; anything else is an unexpected status.
var soakExpected = map[string][]int{
	"GET ping":       {http.StatusUnauthorized}, // the challenge clients log in after
	"GET token":      {http.StatusOK},
	"HEAD blob":      {http.StatusOK, http.StatusNotFound}, // a pusher's "do you have it?"
	"GET blob":       {http.StatusOK},
	"POST upload":    {http.StatusAccepted, http.StatusCreated},
	"PATCH upload":   {http.StatusAccepted},
	"PUT upload":     {http.StatusCreated},
	"HEAD manifest":  {http.StatusOK},
	"GET manifest":   {http.StatusOK},
	"PUT manifest":   {http.StatusCreated},
	"GET tags":       {http.StatusOK},
	"POST promotion": {http.StatusCreated, http.StatusOK}, // 200: a no-op
}

// soakExpectedFor adds statuses one operation expects on a route.
var soakExpectedFor = map[string][]int{
	// go-containerregistry asks whether the manifest is there before it
	// puts it; the soak's tags are new.
	"push HEAD manifest": {http.StatusNotFound},
}

func soakStatusExpected(e exchange) bool {
	if strings.HasSuffix(e.route, " https-probe") {
		return true
	}
	return !e.proxyErr && e.status != 0 &&
		(slices.Contains(soakExpected[e.route], e.status) || slices.Contains(soakExpectedFor[e.key()], e.status))
}

// statusTable counts exchanges by operation, route and status, for the log.
func statusTable(ex []exchange) string {
	counts := map[string]int{}
	for _, e := range ex {
		st := strconv.Itoa(e.status)
		switch {
		case e.proxyErr:
			st = "502(lb: replica gave no response)"
		case e.canceled:
			st = "canceled-by-client"
		case e.status == 0:
			st = "no-response"
		}
		counts[e.key()+" "+st]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-40s %7d\n", k, counts[k])
	}
	return b.String()
}

// rssSampler reads VmRSS (and VmHWM, the process's own peak) of each
// replica from /proc/<pid>/status every interval. A restarted replica is
// the same name with a new pid; its peak covers every incarnation.
type rssSampler struct {
	regs map[string]*harness.Registry
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	peakRSS map[string]int64 // bytes, highest VmRSS sampled
	peakHWM map[string]int64 // bytes, highest VmHWM read
	samples int
}

func startRSSSampler(regs map[string]*harness.Registry, every time.Duration) *rssSampler {
	s := &rssSampler{regs: regs, stop: make(chan struct{}), done: make(chan struct{}),
		peakRSS: map[string]int64{}, peakHWM: map[string]int64{}}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	for name, r := range s.regs {
		pid := r.PID()
		if pid == 0 {
			continue
		}
		rss, hwm, err := procMemory(pid)
		if err != nil {
			continue // exited between PID and the read (the kill)
		}
		s.mu.Lock()
		s.peakRSS[name] = max(s.peakRSS[name], rss)
		s.peakHWM[name] = max(s.peakHWM[name], hwm)
		s.samples++
		s.mu.Unlock()
	}
}

// finish takes a last sample and stops.
func (s *rssSampler) finish() {
	close(s.stop)
	<-s.done
	s.sample()
}

// peak is the highest memory seen for a replica: the sampled VmRSS or
// the kernel's VmHWM, whichever is higher.
func (s *rssSampler) peak(name string) (rss, hwm int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakRSS[name], s.peakHWM[name]
}

// procMemory reads VmRSS and VmHWM (bytes) of a process.
func procMemory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %q", pid, k, v)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return rss, hwm, sc.Err()
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// hookReceiver is a webhook endpoint on 127.0.0.1 that checks signatures
// and records deliveries by X-Slipway-Delivery.
type hookReceiver struct {
	URL    string
	secret string

	mu        sync.Mutex
	delivered map[string]int // delivery id -> requests received
	bad       []string       // signature or body problems
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	h := &hookReceiver{secret: secret, delivered: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/hook"
	return h
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	mac := hmac.New(sha256.New, []byte(h.secret))
	mac.Write(body)
	var env struct {
		ID   string
		Data struct{ ID string }
	}
	id := r.Header.Get("X-Slipway-Delivery")
	problem := ""
	switch {
	case err != nil:
		problem = "reading the body: " + err.Error()
	case r.Header.Get("X-Slipway-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)):
		problem = "bad signature"
	case json.Unmarshal(body, &env) != nil:
		problem = "body is not JSON"
	case id == "" || env.ID != id || env.Data.ID != id:
		problem = fmt.Sprintf("delivery id %q, body id %q, record id %q: want all three equal", id, env.ID, env.Data.ID)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if problem != "" {
		h.bad = append(h.bad, problem+": "+string(body))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.delivered[id]++
	w.WriteHeader(http.StatusNoContent)
}

// snapshot returns the delivery counts and the problems seen so far.
func (h *hookReceiver) snapshot() (map[string]int, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.delivered))
	for k, v := range h.delivered {
		out[k] = v
	}
	return out, slices.Clone(h.bad)
}
