// Package names holds the grammar of repository names and tags, the one
// check every package uses (/v2/ routes, the token service's scopes,
// promotion, the admin pages, the stages of the configuration), so a name
// is valid everywhere or nowhere.
package names

import (
	"regexp"
	"strings"
)

// tagPattern is the OCI distribution grammar of a tag.
var tagPattern = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

// ValidTag reports whether tag follows the OCI distribution grammar of a
// tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
func ValidTag(tag string) bool { return tagPattern.MatchString(tag) }

// maxNameLength bounds a repository name, as distribution's
// reference.RepositoryNameTotalLengthMax does.
const maxNameLength = 255

// ValidRepository reports whether name is a repository name: the OCI
// distribution grammar, path components of lowercase letters and digits
// joined by '.', '_', '__' or runs of '-', separated by '/', at most 255
// bytes in all. It is stricter than reference.WithName, which also
// takes a leading registry host ("Example.com:5000/app"): a repository
// inside this registry has no host part, and an uppercase or ':' first
// component would otherwise slip past glob grants such as "staging/*".
// Linear in len(name), no allocation.
func ValidRepository(name string) bool {
	if name == "" || len(name) > maxNameLength {
		return false
	}
	for comp := range strings.SplitSeq(name, "/") {
		if !validComponent(comp) {
			return false
		}
	}
	return true
}

// validComponent: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*.
func validComponent(c string) bool {
	i := 0
	for i < len(c) {
		// A run of letters and digits, at least one.
		start := i
		for i < len(c) && isLowerAlnum(c[i]) {
			i++
		}
		if i == start || i == len(c) {
			return i > start
		}
		// One separator, then another run must follow.
		switch sep := c[i]; {
		case sep == '.':
			i++
		case sep == '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case sep == '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if i == len(c) {
			return false
		}
	}
	return false // empty component
}

func isLowerAlnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }
