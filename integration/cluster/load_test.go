package cluster

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway/slipway/integration/internal/harness"
)

// receiving is the index of the replica reading the most bytes from its
// sockets and files (/proc/PID/io rchar) over a short window, waiting until
// one reads more than 1 MiB in it: the one an upload is streaming into.
func receiving(t *testing.T, c *harness.Cluster, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		before := make([]int64, len(c.Replicas))
		for i, r := range c.Replicas {
			before[i] = rchar(r.PID())
		}
		time.Sleep(100 * time.Millisecond)
		best, bestN := -1, int64(1<<20)
		for i, r := range c.Replicas {
			if n := rchar(r.PID()) - before[i]; n > bestN {
				best, bestN = i, n
			}
		}
		if best >= 0 {
			t.Logf("replica %d is receiving (%d KiB in 100ms)", best+1, bestN>>10)
			return best
		}
	}
	t.Fatalf("no replica received an upload within %s", timeout)
	return -1
}

// rchar is the bytes process pid has read (0 if it is gone).
func rchar(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// load is clients sending small authenticated requests through HAProxy
// in a loop (manifest HEAD by tag, tag list, a new token now and then),
// counting every answer that is not the expected 200 and every transport
// error.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

// startLoad starts n clients on repo:tag (which must exist) as c.User().
func startLoad(c *harness.Cluster, n int, repo, tag string) *load {
	l := &load{stop: make(chan struct{})}
	for i := range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			hc := harness.NewClient(c.User())
			hc.Timeout = 30 * time.Second
			urls := []string{c.URL() + "/v2/" + repo + "/manifests/" + tag, c.URL() + "/v2/" + repo + "/tags/list"}
			for j := 0; ; j++ {
				select {
				case <-l.stop:
					return
				default:
				}
				method := http.MethodHead
				if j%2 == 1 {
					method = http.MethodGet
				}
				req, _ := http.NewRequest(method, urls[j%2], nil)
				req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
				resp, err := hc.Do(req)
				switch {
				case err != nil:
					l.fail(fmt.Sprintf("client %d: %s %s: %v", i, method, req.URL.Path, err))
				case resp.StatusCode != http.StatusOK:
					resp.Body.Close()
					l.fail(fmt.Sprintf("client %d: %s %s: %s (request id %s)", i, method, req.URL.Path, resp.Status, resp.Header.Get("X-Request-Id")))
				default:
					resp.Body.Close()
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 20 {
		l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+msg)
	}
}

// finish stops the clients and returns how many requests succeeded and
// the failures.
func (l *load) finish() (int64, []string) {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failures
}
