package registry

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/slipway/slipway/internal/names"
)

// ociName is the distribution specification's repository name grammar,
// the oracle names.ValidRepository's hand-written scanner is checked against
// (FuzzRepositoryName).
var ociName = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"app", true},
		{"staging/app", true},
		{"staging/team/app-1.2_x__y---z", true},
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
		{"", false},
		{"staging/../production/app", false},
		{"staging/./app", false},
		{"*", false},
		{"staging/*", false},
		{"stagïng/app", false},
		{"Staging/app", false}, // reference.WithName takes it as a host
		{"staging/App", false},
		{"localhost:5000/app", false},
		{"example.com/app", true}, // just a name with a dot
		{"a//b", false},
		{"/a", false},
		{"a/", false},
		{"a..b", false},
		{"a___b", false},
		{"a._b", false},
		{"-a", false},
		{"a-", false},
		{"a\x00b", false},
	} {
		if got := names.ValidRepository(tc.name); got != tc.want {
			t.Errorf("names.ValidRepository(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestV2RefusesHostAndUppercaseNames: names reference.WithName reads as
// host + path, which the /v2/ routes took before names.ValidRepository, are refused
// like every other invalid name.
func TestV2RefusesHostAndUppercaseNames(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"Staging/app", "localhost:5000/app", "Example.com/team/app"} {
		wantError(t, e.do("GET", "/v2/"+name+"/tags/list", nil), http.StatusBadRequest, "NAME_INVALID")
		wantError(t, e.do("POST", "/v2/"+name+"/blobs/uploads/", nil), http.StatusBadRequest, "NAME_INVALID")
	}
}
