package harness

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// ClusterOptions shapes StartCluster.
type ClusterOptions struct {
	// Replicas is the number of Slipway processes (default 3).
	Replicas int
	// MinIONodes is the number of distributed MinIO nodes (default 4).
	MinIONodes int
	// DrainDelay is every replica's http.drain_delay (default: enough for
	// HAProxy to see a draining replica's 503s, HAProxyFall checks
	// HAProxyInter apart, plus one interval).
	DrainDelay time.Duration
	// HTTPConfig and ExtraConfig are as in Options.
	HTTPConfig  string
	ExtraConfig string
}

// Cluster is Slipway deployed as operators run it: HAProxy in front of
// replicas on one bucket of a distributed MinIO. Clients talk to Host only.
type Cluster struct {
	Host     string      // HAProxy's 127.0.0.1:PORT, also every replica's http.public_url
	LB       *HAProxy    // servers r1, r2, ... are Replicas[0], [1], ...
	Replicas []*Registry // sharing the signing key and http.secret
	MinIO    []*MinIO    // the nodes; replica i talks to node i mod len
	Bucket   string
}

// StartCluster starts a distributed MinIO, a bucket on it, the replicas
// (replica i reaching the bucket through node i) and HAProxy before them;
// all stop when the test ends.
func StartCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Replicas == 0 {
		o.Replicas = 3
	}
	if o.MinIONodes == 0 {
		o.MinIONodes = 4
	}
	if o.DrainDelay == 0 {
		o.DrainDelay = (HAProxyFall + 1) * HAProxyInter * 2
	}
	start := time.Now()
	c := &Cluster{MinIO: StartMinIOCluster(t, o.MinIONodes)}
	c.Bucket = c.MinIO[0].NewBucket(t)
	// HAProxy's port is every replica's public_url, so it is chosen
	// first; the listener holds it while the replicas pick their own
	// ports (a port just released can be handed out again at once: CI
	// once saw a replica take it) and is closed just before HAProxy binds.
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hold.Close() }) // if a replica fails to start
	c.Host = hold.Addr().String()
	first := StartOpts(t, Options{
		S3:         &S3{MinIO: c.MinIO[0], Bucket: c.Bucket},
		PublicURL:  "http://" + c.Host,
		DrainDelay: o.DrainDelay, ExtraConfig: o.ExtraConfig,
		HTTPConfig: fmt.Sprintf("  trusted_proxies: [%q]\n", HAProxySource+"/32") + o.HTTPConfig,
	})
	c.Replicas = []*Registry{first}
	for i := 1; i < o.Replicas; i++ {
		c.Replicas = append(c.Replicas, first.StartReplicaOn(t, c.MinIO[i%len(c.MinIO)]))
	}
	servers := make([]string, len(c.Replicas))
	for i, r := range c.Replicas {
		servers[i] = r.Host
	}
	hold.Close()
	c.LB = StartHAProxy(t, c.Host, servers)
	// Runs before the replicas' own cleanups (which then find them
	// stopped): their drain delays pass together, not one after another.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for i, r := range c.Replicas {
			r.Terminate()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.WaitExit(o.DrainDelay + 30*time.Second); err != nil {
					t.Errorf("stopping replica %d: %v", i+1, err)
				}
			}()
		}
		wg.Wait()
	})
	t.Logf("cluster: haproxy %s -> %s; bucket %s on %d minio nodes; up in %s",
		c.Host, strings.Join(servers, " "), c.Bucket, len(c.MinIO), time.Since(start).Round(time.Millisecond))
	return c
}

// URL is the cluster's base URL (HAProxy).
func (c *Cluster) URL() string { return "http://" + c.Host }

// Ref is a reference on the cluster: Ref("it/app:1") = "127.0.0.1:PORT/it/app:1".
func (c *Cluster) Ref(repoAndTag string) string { return c.Host + "/" + repoAndTag }

// Admin and User are the test accounts (as on a Registry).
func (c *Cluster) Admin() Credentials { return admin }

// User is the account `ci` (harness.UserGrants).
func (c *Cluster) User() Credentials { return user }

// ServerName is HAProxy's name for replica i ("r1" for Replicas[0]).
func (c *Cluster) ServerName(i int) string { return fmt.Sprintf("r%d", i+1) }

// ServedBy is the index of the replica whose access log holds request id
// (the X-Request-Id every answer carries), waiting up to 5s for the line
// (it is written when the request ends); -1 if none does.
func (c *Cluster) ServedBy(id string) int {
	i, _ := c.logLine(id)
	return i
}

// AccessLog is the access log line of the request whose X-Request-Id is
// id ("" if no replica logged it within a few seconds).
func (c *Cluster) AccessLog(id string) string {
	_, line := c.logLine(id)
	return line
}

// logLine finds the replica that logged request id, and the line.
func (c *Cluster) logLine(id string) (int, string) {
	needle := fmt.Sprintf(`"request_id":%q`, id)
	deadline := time.Now().Add(5 * time.Second)
	for {
		for i, r := range c.Replicas {
			for _, line := range strings.Split(r.Logs(), "\n") {
				if strings.Contains(line, needle) && strings.Contains(line, `"msg":"request"`) {
					return i, line
				}
			}
		}
		if time.Now().After(deadline) {
			return -1, ""
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RequestIDs is an http.RoundTripper that records the X-Request-Id of
// every answer, to find later which replica served it (Cluster.ServedBy).
type RequestIDs struct {
	Next http.RoundTripper // nil: http.DefaultTransport

	mu   sync.Mutex
	seen []RequestRecord
}

// RequestRecord is one answered request.
type RequestRecord struct {
	Method, Path string
	Status       int
	ID           string
}

// RoundTrip implements http.RoundTripper.
func (r *RequestIDs) RoundTrip(req *http.Request) (*http.Response, error) {
	next := r.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.seen = append(r.seen, RequestRecord{req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("X-Request-Id")})
		r.mu.Unlock()
	}
	return resp, err
}

// Seen is every request answered so far, in order.
func (r *RequestIDs) Seen() []RequestRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RequestRecord(nil), r.seen...)
}
