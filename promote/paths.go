package promote

// The ledger's storage keys, in one place.
//
//	ledger/chains/<h>/<inv-seq>   record <seq> of one target tag's chain, written
//	                              with PutIfAbsent: winning that write is what
//	                              serialises promotions of the tag across replicas.
//	                              <h> = sha256(repository ":" tag)[:40];
//	                              <inv-seq> = 999999999999 - seq, zero-padded, so the
//	                              newest record is the first key listed.
//	ledger/all/<id>               copy of every record (newest first: ids start
//	                              with an inverted timestamp), read by id.
//	ledger/apps/<a>/<id>          copy per app (a = sha256(app)[:40]), for history
//	                              by repository without scanning everything.
//	ledger/releases/<id>          a release (releasedoc.go): its planned members,
//	                              then its member records; newest first like
//	                              ledger/all. Written put-if-absent (the commit
//	                              point of the release), then put-if-match.
//	ledger/releases-pending/<id>  empty: release <id> may not be finished; written
//	                              before the release, deleted once it is settled.
//
// Order of writes (the crash story): tree links and manifests in the target
// repository, chain record, index copies, tag (stamped with the record's
// seq: tagstate.go, and commit for why). Whoever later finds a chain
// record newer than the tag writes the copies and the tag for it ("roll
// forward"), so a crash after the chain write still ends fully promoted.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"
)

const (
	chainsPrefix = "ledger/chains/"
	allPrefix    = "ledger/all/"
	appsPrefix   = "ledger/apps/"
	// releasesPrefix and pendingPrefix: releases, and the markers of
	// releases that may still need finishing.
	releasesPrefix = "ledger/releases/"
	pendingPrefix  = "ledger/releases-pending/"
	maxSeq         = 999999999999
)

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:20])
}

func chainPrefix(repo, tag string) string {
	return chainsPrefix + shortHash(repo+":"+tag) + "/"
}

func chainKey(repo, tag string, seq int64) string {
	return chainPrefix(repo, tag) + fmt.Sprintf("%012d", maxSeq-seq)
}

func recordKey(id string) string { return allPrefix + id }

func appPrefix(app string) string { return appsPrefix + shortHash(app) + "/" }

func appRecordKey(app, id string) string { return appPrefix(app) + id }

func releaseKey(id string) string { return releasesPrefix + id }

func pendingKey(id string) string { return pendingPrefix + id }

// idTime is the time a valid id was made at (newID).
func idTime(id string) time.Time {
	inv, err := strconv.ParseUint(id[:16], 16, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, int64(math.MaxInt64-inv))
}

// newID makes a record id that sorts newest first: the inverted Unix time
// in nanoseconds (16 hex digits), then 8 random hex digits.
func newID(at time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%016x-%s", uint64(math.MaxInt64-at.UnixNano()), hex.EncodeToString(b[:]))
}

// validID guards keys built from ids that come from URLs.
func validID(id string) bool {
	if len(id) != 25 || id[16] != '-' {
		return false
	}
	for i, c := range id {
		if i == 16 {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
