package retention

import (
	"cmp"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/registry"
)

// candidate is a tag a rule deletes, with why.
type candidate struct {
	tag    string
	state  registry.TagState
	reason string
}

// cosignTag is the tag scheme cosign attaches signatures, attestations
// and SBOMs by: sha256-<hex>.sig|.att|.sbom names its subject digest.
var cosignTag = regexp.MustCompile(`^(sha256)-([0-9a-f]{64})\.(sig|att|sbom)$`)

// decide returns the tags of one repository that rule deletes, in the
// order of their push time, newest first. It only reads its arguments:
// now is the store's clock, promoted says whether a promotion wrote a
// tag, recent holds the digests the newest ledger records named here.
//
// A tag stays when a promotion wrote it, its digest is in recent, it
// matches keep_tags, it is among the keep_last most recently written, or
// it was written within keep_within. Cosign tags are not counted by
// keep_last: one goes only with its subject, when this pass deletes a tag
// naming the subject and no tag that stays names it.
func decide(rule config.RetentionRule, states map[string]registry.TagState, now time.Time, promoted func(registry.TagState) bool, recent map[digest.Digest]bool) []candidate {
	type entry struct {
		tag string
		st  registry.TagState
	}
	var tags, cosign []entry
	for tag, st := range states {
		if cosignTag.MatchString(tag) {
			cosign = append(cosign, entry{tag, st})
		} else {
			tags = append(tags, entry{tag, st})
		}
	}
	// Newest first; equal times in tag order, so every replica decides
	// alike.
	slices.SortFunc(tags, func(a, b entry) int {
		return cmp.Or(b.st.ModTime.Compare(a.st.ModTime), strings.Compare(a.tag, b.tag))
	})
	var out []candidate
	kept, dropped := map[digest.Digest]bool{}, map[digest.Digest]bool{}
	for i, e := range tags {
		keep := promoted(e.st) || recent[e.st.Digest] || matchAny(rule.KeepTags, e.tag) ||
			i < rule.KeepLast || (rule.KeepWithin > 0 && now.Sub(e.st.ModTime) < rule.KeepWithin)
		if keep {
			kept[e.st.Digest] = true
			continue
		}
		dropped[e.st.Digest] = true
		out = append(out, candidate{tag: e.tag, state: e.st, reason: why(rule, e.st, now)})
	}
	for _, e := range cosign {
		m := cosignTag.FindStringSubmatch(e.tag)
		subject := digest.Digest(m[1] + ":" + m[2])
		if !dropped[subject] || kept[subject] || promoted(e.st) || recent[e.st.Digest] || matchAny(rule.KeepTags, e.tag) {
			continue
		}
		out = append(out, candidate{tag: e.tag, state: e.st, reason: "goes with its subject " + subject.String() + ", which keeps no tag here"})
	}
	return out
}

func matchAny(patterns []string, tag string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, tag); ok {
			return true
		}
	}
	return false
}

// why says which limits a deleted tag is beyond, for the report.
func why(rule config.RetentionRule, st registry.TagState, now time.Time) string {
	var parts []string
	if rule.KeepLast > 0 {
		parts = append(parts, fmt.Sprintf("not among the %d most recently pushed", rule.KeepLast))
	}
	if rule.KeepWithin > 0 {
		parts = append(parts, fmt.Sprintf("pushed %s ago, keep_within %s", now.Sub(st.ModTime).Round(time.Second), rule.KeepWithin))
	}
	return strings.Join(parts, "; ")
}
