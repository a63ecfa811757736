// Command floor is the S3 benchmark's floor for blob pushes: a forwarder
// that does only the work any registry must do for a docker-style push
// onto S3 and nothing else, so that its throughput is the best a registry
// could reach on the same machine (bench/run-s3.sh, systems floor and
// floor-nohash).
//
//	floor -listen 127.0.0.1:5305 -s3-endpoint 127.0.0.1:5350 -s3-bucket floor [-hash=false]
//
// What it does, per blob: POST /v2/<name>/blobs/uploads/ opens an upload
// (202 + Location); PATCH reads the whole body (docker sends it chunked, no
// Content-Length), hashing it with SHA-256 as it is read (-hash, default
// on: the digest a registry must check) and holding it in a pooled buffer
// (a body of unknown length must be held to send one S3 PUT with a
// Content-Length), then sends it as ONE minio-go PutObject, UNSIGNED-PAYLOAD
// without Content-MD5 (as regbench's raw rows), under a random key, and
// answers 202 + Range; PUT ?digest= compares the digest with the one
// computed (400 on mismatch; with -hash=false it trusts the client) and
// answers 201. HEAD /v2/<name>/blobs/<digest> answers 200 + Content-Length
// for a blob pushed to <name> since start, 404 otherwise. GET /v2/ answers
// 200. Nothing else: no auth, no metadata in S3 (uploads and blobs live in
// memory only, lost at exit), no chunked uploads of several PATCHes, no
// pulls, no manifests.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"hash"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// putOpts are regbench's rawPut (bench/regbench/raw.go), and one PUT
// whatever the size.
var putOpts = minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true, SendContentMd5: false, DisableMultipart: true}

// upload is an open upload session; digest is set once its PATCH is stored.
type upload struct {
	name   string
	digest string // "sha256:<hex>", or "" without -hash or before the PATCH
	size   int64
	stored bool
}

type server struct {
	mc     *minio.Client
	bucket string
	hash   bool
	bufs   *freeList

	mu      sync.Mutex
	uploads map[string]*upload // by id
	blobs   map[string]int64   // "<name>@<digest>" -> size
}

func main() {
	var (
		listen, endpoint, bucket, accessKey, secretKey string
		hashBodies                                     bool
		buffers, bufferMiB                             int
	)
	flag.StringVar(&listen, "listen", "127.0.0.1:5305", "address to serve the registry API on")
	flag.StringVar(&endpoint, "s3-endpoint", "", "S3 endpoint host:port or http(s):// URL (required)")
	flag.StringVar(&bucket, "s3-bucket", "floor", "bucket (created if missing)")
	flag.StringVar(&accessKey, "s3-access-key", os.Getenv("MINIO_ROOT_USER"), "access key (env MINIO_ROOT_USER)")
	flag.StringVar(&secretKey, "s3-secret-key", os.Getenv("MINIO_ROOT_PASSWORD"), "secret key (env MINIO_ROOT_PASSWORD)")
	flag.BoolVar(&hashBodies, "hash", true, "SHA-256 every PATCH body and check the PUT's digest against it (false: trust the client's digest)")
	flag.IntVar(&buffers, "buffers", 8, "body buffers allocated and touched at start (more are allocated when all are in use; up to this many are kept)")
	flag.IntVar(&bufferMiB, "buffer-mib", 17, "size of each body buffer in MiB (a longer body grows its buffer)")
	flag.Parse()
	if endpoint == "" {
		log.Fatal("floor: -s3-endpoint is required")
	}
	mc, err := newMinio(endpoint, accessKey, secretKey)
	if err != nil {
		log.Fatalf("floor: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = ensureBucket(ctx, mc, bucket)
	cancel()
	if err != nil {
		log.Fatalf("floor: bucket %s: %v", bucket, err)
	}
	s := &server{mc: mc, bucket: bucket, hash: hashBodies, bufs: newFreeList(buffers, bufferMiB<<20),
		uploads: map[string]*upload{}, blobs: map[string]int64{}}
	srv := &http.Server{Addr: listen, Handler: s, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// newMinio is regbench's newMinio: the same transport as its client.
func newMinio(endpoint, accessKey, secretKey string) (*minio.Client, error) {
	ep := strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://")
	return minio.New(ep, &minio.Options{
		Creds:     credentials.NewStaticV4(accessKey, secretKey, ""),
		Secure:    strings.HasPrefix(endpoint, "https://"),
		Region:    "us-east-1",
		Transport: newTransport(),
	})
}

// newTransport is regbench's newTransport (bench/regbench/client.go).
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
		ResponseHeaderTimeout: 5 * time.Minute,
		ExpectContinueTimeout: time.Second,
	}
}

func ensureBucket(ctx context.Context, mc *minio.Client, bucket string) error {
	ok, err := mc.BucketExists(ctx, bucket)
	if err != nil || ok {
		return err
	}
	return mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ServeHTTP routes the few requests a push needs; everything else is 404.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/v2/" || p == "/v2" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if !strings.HasPrefix(p, "/v2/") {
		http.NotFound(w, r)
		return
	}
	if i := strings.LastIndex(p, "/blobs/uploads/"); i > len("/v2/") {
		name, id := p[len("/v2/"):i], p[i+len("/blobs/uploads/"):]
		switch {
		case r.Method == http.MethodPost && id == "":
			s.start(w, name)
		case r.Method == http.MethodPatch && id != "":
			s.patch(w, r, name, id)
		case r.Method == http.MethodPut && id != "":
			s.finish(w, r, name, id)
		default:
			http.Error(w, "unsupported", http.StatusMethodNotAllowed)
		}
		return
	}
	if i := strings.LastIndex(p, "/blobs/"); i > len("/v2/") && (r.Method == http.MethodHead || r.Method == http.MethodGet) {
		s.mu.Lock()
		size, ok := s.blobs[p[len("/v2/"):i]+"@"+p[i+len("/blobs/"):]]
		s.mu.Unlock()
		if !ok || r.Method == http.MethodGet { // no pulls: GET is for HEAD's sake only
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Docker-Content-Digest", p[i+len("/blobs/"):])
		w.WriteHeader(http.StatusOK)
		return
	}
	http.NotFound(w, r)
}

func (s *server) start(w http.ResponseWriter, name string) {
	id := randomID()
	s.mu.Lock()
	s.uploads[id] = &upload{name: name}
	s.mu.Unlock()
	h := w.Header()
	h.Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	h.Set("Range", "0-0")
	h.Set("Docker-Upload-UUID", id)
	w.WriteHeader(http.StatusAccepted)
}

// lookup returns the upload id of name, or answers 404 and returns nil.
func (s *server) lookup(w http.ResponseWriter, name, id string) *upload {
	s.mu.Lock()
	u := s.uploads[id]
	s.mu.Unlock()
	if u == nil || u.name != name {
		http.Error(w, "unknown upload", http.StatusNotFound)
		return nil
	}
	return u
}

// patch holds the whole body (hashing it as it is read), sends it as one
// PutObject and remembers its digest and size.
func (s *server) patch(w http.ResponseWriter, r *http.Request, name, id string) {
	u := s.lookup(w, name, id)
	if u == nil {
		return
	}
	if u.stored {
		http.Error(w, "one PATCH per upload", http.StatusRequestedRangeNotSatisfiable)
		return
	}
	var h hash.Hash
	if s.hash {
		h = sha256.New()
	}
	buf := s.bufs.get()
	defer func() { s.bufs.put(buf) }()
	body, err := readAll(r.Body, buf, h)
	buf = body[:0] // a grown buffer goes back to the list
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := s.mc.PutObject(r.Context(), s.bucket, randomID(), bytes.NewReader(body), int64(len(body)), putOpts); err != nil {
		http.Error(w, "PutObject: "+err.Error(), http.StatusBadGateway)
		return
	}
	digest := ""
	if h != nil {
		digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	s.mu.Lock()
	u.digest, u.size, u.stored = digest, int64(len(body)), true
	s.mu.Unlock()
	hd := w.Header()
	hd.Set("Location", "/v2/"+name+"/blobs/uploads/"+id)
	hd.Set("Range", fmt.Sprintf("0-%d", len(body)-1))
	hd.Set("Docker-Upload-UUID", id)
	w.WriteHeader(http.StatusAccepted)
}

// finish checks the PUT's digest against the PATCH's and records the blob.
func (s *server) finish(w http.ResponseWriter, r *http.Request, name, id string) {
	u := s.lookup(w, name, id)
	if u == nil {
		return
	}
	digest := r.URL.Query().Get("digest")
	if r.ContentLength != 0 {
		http.Error(w, "PUT with a body: unsupported", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	stored, want, size := u.stored, u.digest, u.size
	s.mu.Unlock()
	switch {
	case !stored:
		http.Error(w, "PUT before PATCH: unsupported", http.StatusBadRequest)
		return
	case !strings.HasPrefix(digest, "sha256:") || (s.hash && digest != want):
		http.Error(w, "digest mismatch: computed "+want, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	delete(s.uploads, id)
	s.blobs[name+"@"+digest] = size
	s.mu.Unlock()
	w.Header().Set("Location", "/v2/"+name+"/blobs/"+digest)
	w.Header().Set("Docker-Content-Digest", digest)
	w.WriteHeader(http.StatusCreated)
}
