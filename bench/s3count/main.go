// Command s3count is a counting reverse proxy for S3: put it between a
// registry and MinIO (the registry's S3 endpoint is -listen) and it forwards
// every request unchanged (Host header included, so presigned URLs signed
// for the proxy still verify) while counting them by kind.
//
//	s3count -listen 127.0.0.1:9101 -target http://127.0.0.1:9100 -control 127.0.0.1:9201
//	curl http://127.0.0.1:9201/take    # counts since the last take, as JSON; resets them
//
// -write-delay D holds every PUT, POST and DELETE for D before forwarding
// it (reads pass at once): a slow store under a client, so that a test's
// kill lands in the middle of what the client writes.
//
// Kinds: "<METHOD> <what>" where what is bucket (no key), object,
// part (?partNumber&uploadId), part-copy (a part with X-Amz-Copy-Source),
// copy (an object PUT with X-Amz-Copy-Source), multipart-init (POST
// ?uploads), multipart-list-uploads (GET ?uploads), multipart-complete
// (POST ?uploadId), multipart-abort (DELETE ?uploadId),
// multipart-list-parts (GET ?uploadId), multi-delete (POST ?delete), list
// (?list-type or prefix on a bucket), plus " presigned" when the query
// carries X-Amz-Signature (a client following a registry's redirect).
//
// /take answers a JSON object:
//
//	total           requests
//	counts          kind → requests
//	log             "METHOD /path?query-keys" per request
//	bytes           kind → bytes of request bodies (as sent: a chunk-signed
//	                upload counts its chunk headers too)
//	bytes_total     the sum of bytes
//	response_bytes  kind → bytes of response bodies
//	requests        per request: method, path, query (keys only), kind,
//	                status, bytes, response_bytes
//
// A request is counted when its response has been forwarded, so its byte
// counts are whole; a take while a request is in flight leaves it for the
// next take.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// request is one forwarded request, as /take lists it.
type request struct {
	Method        string `json:"method"`
	Path          string `json:"path"`
	Query         string `json:"query"`
	Kind          string `json:"kind"`
	Status        int    `json:"status"`
	Bytes         int64  `json:"bytes"`
	ResponseBytes int64  `json:"response_bytes"`
}

type counter struct {
	mu       sync.Mutex
	counts   map[string]int
	bytes    map[string]int64
	respByte map[string]int64
	log      []string
	requests []request
}

func newCounter() *counter {
	return &counter{counts: map[string]int{}, bytes: map[string]int64{}, respByte: map[string]int64{}}
}

func (c *counter) add(r request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[r.Kind]++
	c.bytes[r.Kind] += r.Bytes
	c.respByte[r.Kind] += r.ResponseBytes
	c.log = append(c.log, r.Method+" "+r.Path+"?"+r.Query)
	c.requests = append(c.requests, r)
}

// take returns the counts since the last take and resets them.
func (c *counter) take() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, n := range c.counts {
		total += n
	}
	var bytesTotal int64
	for _, n := range c.bytes {
		bytesTotal += n
	}
	out := map[string]any{"counts": c.counts, "log": c.log, "total": total,
		"bytes": c.bytes, "bytes_total": bytesTotal, "response_bytes": c.respByte, "requests": c.requests}
	if c.requests == nil {
		out["requests"] = []request{}
	}
	fresh := newCounter()
	c.counts, c.bytes, c.respByte, c.log, c.requests = fresh.counts, fresh.bytes, fresh.respByte, nil, nil
	return out
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

// countingBody counts what is read through it.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// countingWriter counts the response body written through it; Flush is
// forwarded so streamed responses stay streamed.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9101", "address the registry talks S3 to")
	target := flag.String("target", "http://127.0.0.1:9100", "the real S3 endpoint")
	control := flag.String("control", "127.0.0.1:9201", "GET /take here returns and resets the counts")
	writeDelay := flag.Duration("write-delay", 0, "hold every PUT, POST and DELETE this long before forwarding it")
	flag.Parse()
	t, err := url.Parse(*target)
	if err != nil {
		log.Fatal(err)
	}
	c := newCounter()
	rp := httputil.NewSingleHostReverseProxy(t) // keeps the incoming Host header
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	go func() {
		mux := http.NewServeMux()
		mux.HandleFunc("/take", func(w http.ResponseWriter, r *http.Request) {
			out := c.take()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(out)
		})
		log.Fatal(http.ListenAndServe(*control, mux))
	}()
	log.Fatal(http.ListenAndServe(*listen, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := request{Method: r.Method, Path: r.URL.Path, Query: shortQuery(r.URL.Query()), Kind: kind(r)}
		if *writeDelay > 0 && (r.Method == http.MethodPut || r.Method == http.MethodPost || r.Method == http.MethodDelete) {
			select {
			case <-time.After(*writeDelay):
			case <-r.Context().Done():
			}
		}
		var body *countingBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &countingBody{ReadCloser: r.Body}
			r.Body = body
		}
		cw := &countingWriter{ResponseWriter: w}
		rp.ServeHTTP(cw, r)
		if body != nil {
			rec.Bytes = body.n
		}
		rec.Status, rec.ResponseBytes = cw.status, cw.n
		c.add(rec)
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
