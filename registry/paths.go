package registry

// Every storage key the registry uses is built here, so the layout can be
// read (and changed) in one place. The metadata layer (Metadata, meta.go)
// reads and writes all of them but what an upload writes itself (sessions
// and data segments: uploads.go, segments.go). The layout, and the order in
// which a push writes it, is the crash story: data, then descriptor, then repository link,
// then tag. A crash between two writes leaves only unreferenced objects,
// which garbage collection removes after a grace period.
//
//	data/<hh>/<segment-id>                       blob bytes: one segment, written once by one request
//	data/<hh>/<upload-id>                        the same, for a session's implicit first segment
//	                                             (segments.go: firstSegmentKey)
//	blobs/<alg>/<hh>/<hex>                       blob descriptor {"data":…,"size":…} or
//	                                             {"segments":[…],"size":…} (immutable)
//	manifests/<alg>/<hh>/<hex>                   "<media type>\n" + manifest bytes (immutable)
//	uploads/<upload-id>                          upload session state (JSON)
//	repositories/<name>/_blobs/<alg>/<hex>       link: blob is in the repository
//	repositories/<name>/_manifests/<alg>/<hex>   link: manifest is in the repository
//	repositories/<name>/_tags/<tag>              "<digest>", or "<digest>\n<stamp>\n" when written
//	                                             with a stamp (metatags.go; promotion's Seq)
//	repositories/<name>/_tagjournal/<tag>/<id>   a tag write in progress or done, and
//	repositories/<name>/_tagindex/tags           every tag's content: read together
//	                                             (tagjournal.go, tagread.go)
//	repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>
//	                                             referrer descriptor (JSON) of a subject
//	catalog/<hex(name)>                          repository exists (hex keeps lexical order;
//	                                             split every 200 chars with "+/" to stay under NAME_MAX)
//
// Upload sessions: uploads/<id> exists only once a session holds more
// than its first chunk (uploadid.go; a session of one chunk is its implicit
// first segment, segments.go), is closed (committed or cancelled) with
// compare-and-set before anything depends on it, and is deleted after the
// response or by purge (one kind of committed session is left to purge on
// purpose: opensessions.go); a crash at any point leaves at most a closed or
// untouched session that purge removes. An implicit first segment is
// deleted only once no commit can name it (Metadata.deleteSegments).
//
// Blob links are remembered in process for blob GETs (Metadata.linked,
// Options.BlobLinkTTL, 5 min by default). Garbage collection may delete
// the descriptor and data of a blob as soon as its last link is gone (the
// collector's LinkTTL hold is off by default): a GET served from a
// remembered link then finds the data gone, re-reads the store and
// answers 404 BLOB_UNKNOWN (Registry.getBlob), which is what a blob no
// repository links should answer; never a 500 or other bytes.
//
// Repository name components never start with '_' (distribution/reference
// grammar), so "_blobs" and friends cannot collide with a nested repository.

import (
	"encoding/hex"
	"strings"

	"github.com/opencontainers/go-digest"
)

func fanout(hexs string) string {
	if len(hexs) < 2 {
		return "00"
	}
	return hexs[:2]
}

func dataKey(segmentID string) string {
	return "data/" + fanout(segmentID) + "/" + segmentID
}

func blobKey(d digest.Digest) string {
	return "blobs/" + string(d.Algorithm()) + "/" + fanout(d.Encoded()) + "/" + d.Encoded()
}

func manifestKey(d digest.Digest) string {
	return "manifests/" + string(d.Algorithm()) + "/" + fanout(d.Encoded()) + "/" + d.Encoded()
}

func uploadKey(id string) string { return "uploads/" + id }

func repoKey(name string) string { return "repositories/" + name + "/" }

func blobLinkKey(name string, d digest.Digest) string {
	return repoKey(name) + "_blobs/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func manifestLinkKey(name string, d digest.Digest) string {
	return repoKey(name) + "_manifests/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func tagsPrefix(name string) string { return repoKey(name) + "_tags/" }

func tagKey(name, tag string) string { return tagsPrefix(name) + tag }

func journalPrefix(name string) string { return repoKey(name) + "_tagjournal/" }

func journalKey(name, tag, id string) string { return journalPrefix(name) + tag + "/" + id }

func tagIndexKey(name string) string { return repoKey(name) + "_tagindex/tags" }

// tagOfKey splits a tag key (tagKey) into repository and tag.
func tagOfKey(key string) (name, tag string, ok bool) {
	rest, ok := strings.CutPrefix(key, "repositories/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/_tags/")
	if i <= 0 {
		return "", "", false
	}
	name, tag = rest[:i], rest[i+len("/_tags/"):]
	return name, tag, tag != "" && !strings.Contains(tag, "/")
}

func referrersPrefix(name string, subject digest.Digest) string {
	return repoKey(name) + "_referrers/" + string(subject.Algorithm()) + "/" + subject.Encoded() + "/"
}

func referrerKey(name string, subject, referrer digest.Digest) string {
	return referrersPrefix(name, subject) + string(referrer.Algorithm()) + "-" + referrer.Encoded()
}

const catalogPrefix = "catalog/"

// catalogComponent bounds one component of a catalog key: file systems
// refuse names over 255 bytes and a repository name's hex reaches 510.
const catalogComponent = 200

// catalogKey encodes a repository name so that keys sort exactly as names
// do. Hex is order-preserving; the "+/" cuts keep that order because every
// key cut at a position has exactly the same 200 characters before it.
func catalogKey(name string) string {
	h := hex.EncodeToString([]byte(name))
	var b strings.Builder
	b.WriteString(catalogPrefix)
	for len(h) > catalogComponent {
		b.WriteString(h[:catalogComponent])
		b.WriteString("+/")
		h = h[catalogComponent:]
	}
	b.WriteString(h)
	return b.String()
}

func nameFromCatalogKey(key string) (string, bool) {
	h := strings.ReplaceAll(strings.TrimPrefix(key, catalogPrefix), "+/", "")
	b, err := hex.DecodeString(h)
	if err != nil {
		return "", false
	}
	return string(b), true
}
