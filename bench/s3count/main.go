// Command s3count is a counting reverse proxy for S3: put it between a
// registry and MinIO (the registry's S3 endpoint is -listen) and it forwards
// every request unchanged (Host header included, so presigned URLs signed
// for the proxy still verify) while counting them by kind.
//
//	s3count -listen 127.0.0.1:9101 -target http://127.0.0.1:9100 -control 127.0.0.1:9201
//	curl http://127.0.0.1:9201/take    # counts since the last take, as JSON; resets them
//
// Kinds: "<METHOD> <what>" where what is bucket (no key), object,
// part (?partNumber&uploadId), multipart-init (POST ?uploads),
// multipart-list-uploads (GET ?uploads), multipart-complete (POST
// ?uploadId), multipart-list-parts (GET ?uploadId), list (?list-type or
// prefix on a bucket), plus " presigned" when the query carries
// X-Amz-Signature (a client following a registry's redirect).
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

type counter struct {
	mu     sync.Mutex
	counts map[string]int
	log    []string
}

func kind(r *http.Request) string {
	q := r.URL.Query()
	p := strings.TrimPrefix(r.URL.Path, "/")
	hasKey := strings.Contains(p, "/") && !strings.HasSuffix(p, "/")
	what := "object"
	switch {
	case q.Has("uploads") && r.Method == http.MethodPost:
		what = "multipart-init"
	case q.Has("uploads"):
		what = "multipart-list-uploads"
	case q.Has("partNumber") && q.Has("uploadId"):
		what = "part"
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			what = "part-copy"
		}
	case q.Has("uploadId") && r.Method == http.MethodPost:
		what = "multipart-complete"
	case q.Has("uploadId") && r.Method == http.MethodDelete:
		what = "multipart-abort"
	case q.Has("uploadId"):
		what = "multipart-list-parts"
	case q.Has("delete"):
		what = "multi-delete"
	case !hasKey && (q.Has("list-type") || q.Has("prefix") || q.Has("delimiter")):
		what = "list"
	case !hasKey:
		what = "bucket"
	case r.Header.Get("X-Amz-Copy-Source") != "":
		what = "copy"
	}
	k := r.Method + " " + what
	if q.Has("X-Amz-Signature") {
		k += " presigned"
	}
	return k
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9101", "address the registry talks S3 to")
	target := flag.String("target", "http://127.0.0.1:9100", "the real S3 endpoint")
	control := flag.String("control", "127.0.0.1:9201", "GET /take here returns and resets the counts")
	flag.Parse()
	t, err := url.Parse(*target)
	if err != nil {
		log.Fatal(err)
	}
	c := &counter{counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(t) // keeps the incoming Host header
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	go func() {
		mux := http.NewServeMux()
		mux.HandleFunc("/take", func(w http.ResponseWriter, r *http.Request) {
			c.mu.Lock()
			out := map[string]any{"counts": c.counts, "log": c.log}
			total := 0
			for _, n := range c.counts {
				total += n
			}
			out["total"] = total
			c.counts, c.log = map[string]int{}, nil
			c.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(out)
		})
		log.Fatal(http.ListenAndServe(*control, mux))
	}()
	log.Fatal(http.ListenAndServe(*listen, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := kind(r)
		c.mu.Lock()
		c.counts[k]++
		c.log = append(c.log, r.Method+" "+r.URL.Path+"?"+shortQuery(r.URL.Query()))
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	})))
}

// shortQuery lists the query's keys (not the values: signatures, ids).
func shortQuery(q url.Values) string {
	var ks []string
	for k := range q {
		if !strings.HasPrefix(k, "X-Amz-") {
			ks = append(ks, k)
		}
	}
	return strings.Join(ks, "&")
}
