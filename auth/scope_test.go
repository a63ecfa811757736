package auth

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// manyActions is "a1,a2,…,an": n distinct unknown actions, the shape of
// the request that cost 14.7 s of CPU with n = 120,000 (issue 10).
func manyActions(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		b.WriteString("a" + strconv.Itoa(i))
	}
	return b.String()
}

func scopesOf(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("repository:staging/app%d:pull", i)
	}
	return out
}

func TestParseScopesLimits(t *testing.T) {
	// At the limits: accepted.
	if got, err := ParseScopes(scopesOf(MaxScopes)); err != nil || len(got) != MaxScopes {
		t.Fatalf("%d scopes: %d entries, %v", MaxScopes, len(got), err)
	}
	sixteen := "repository:staging/app:" + strings.Repeat("pull,", MaxScopeActions-1) + "push"
	if got, err := ParseScopes([]string{sixteen}); err != nil || !reflect.DeepEqual(got[0].Actions, []string{"pull", "push"}) {
		t.Fatalf("%d actions: %+v, %v", MaxScopeActions, got, err)
	}
	// One more scope, counted across ?scope= values and space-separated
	// entries alike; one more action, repeated and unknown ones counted.
	over := scopesOf(MaxScopes - 1)
	over[0] += " registry:catalog:*"
	for name, in := range map[string][]string{
		"scopes":                 scopesOf(MaxScopes + 1),
		"scopes in one value":    {strings.Join(scopesOf(MaxScopes+1), " ")},
		"scopes, mixed":          append(over, "repository:x:pull"),
		"actions":                {"repository:staging/app:" + manyActions(MaxScopeActions+1)},
		"repeated actions":       {"repository:staging/app:" + strings.Repeat("pull,", MaxScopeActions) + "pull"},
		"actions of a 2nd scope": {"repository:a:pull", "repository:b:" + manyActions(120_000)},
		"a long scope":           {"repository:staging/" + strings.Repeat("a", MaxScopeLength) + ":pull"},
		"a long parameter":       {strings.Repeat(" ", MaxScopes*(MaxScopeLength+1)+1)},
	} {
		if got, err := ParseScopes(in); !errors.Is(err, ErrScopeLimit) {
			t.Errorf("%s over the limit: %d entries, error %v; want ErrScopeLimit", name, len(got), err)
		}
	}
	// A malformed scope is not a limit error.
	if _, err := ParseScopes([]string{"repository:app"}); err == nil || errors.Is(err, ErrScopeLimit) {
		t.Errorf("malformed scope: %v", err)
	}
}

func TestParseScopesDropsUnknownActions(t *testing.T) {
	got, err := ParseScopes([]string{"repository:staging/app:bogus,pull,PUSH,push,pull,promote,delete,*,pull", "registry:catalog:*,everything"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Access{
		{Type: TypeRepository, Name: "staging/app", Actions: []string{"pull", "push", "promote", "delete", "*"}},
		{Type: TypeRegistry, Name: NameCatalog, Actions: []string{"*"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// allocated is the average number of allocations and bytes allocated by
// one call of f.
func allocated(runs int, f func()) (allocs, bytes uint64) {
	f() // warm up: maps and pools of the runtime, not f's own cost
	// MemStats counts every goroutine's allocations, this package's other
	// tests' included: noise only adds, so the least of several single
	// runs is f's own cost.
	allocs, bytes = math.MaxUint64, math.MaxUint64
	var before, after runtime.MemStats
	for range runs {
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		allocs = min(allocs, after.Mallocs-before.Mallocs)
		bytes = min(bytes, after.TotalAlloc-before.TotalAlloc)
	}
	return allocs, bytes
}

// TestParseScopesCostIsBounded: refusing an oversized request costs the
// same whatever its size (the limit is found before the excess is read),
// and accepted requests cost in proportion to their scopes. Allocations
// stand for the work: the quadratic parser allocated for every action.
func TestParseScopesCostIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   func(n int) []string
	}{
		{"actions in one scope", func(n int) []string { return []string{"repository:staging/app:" + manyActions(n)} }},
		{"scopes in one value", func(n int) []string { return []string{strings.Join(scopesOf(n), " ")} }},
		{"scope values", scopesOf},
	} {
		small, large := tc.in(2_000), tc.in(20_000)
		sa, sb := allocated(5, func() { _, _ = ParseScopes(small) })
		la, lb := allocated(5, func() { _, _ = ParseScopes(large) })
		// The same work for 10 times the input, give or take runtime noise.
		if la > sa+2 || lb > sb+1024 {
			t.Errorf("%s: 2,000 cost %d allocations (%d bytes), 20,000 cost %d (%d bytes): the cost grows with the input", tc.name, sa, sb, la, lb)
		}
	}
	// Accepted requests: per scope, a constant.
	oneA, _ := allocated(20, func() { _, _ = ParseScopes(scopesOf(1)) })
	fullA, _ := allocated(20, func() { _, _ = ParseScopes(scopesOf(MaxScopes)) })
	if fullA > uint64(MaxScopes)*oneA+16 {
		t.Errorf("1 scope: %d allocations, %d scopes: %d: more than linear", oneA, MaxScopes, fullA)
	}
}

// BenchmarkParseScopes: a full request at the limits, and refusals of
// oversized ones (their cost must not depend on n).
//
//	go test -run x -bench ParseScopes -benchmem ./auth/
func BenchmarkParseScopes(b *testing.B) {
	full := make([]string, MaxScopes)
	for i := range full {
		full[i] = fmt.Sprintf("repository:staging/app%d:pull,push,delete,promote,*", i)
	}
	b.Run("limits", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseScopes(full); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{1_000, 12_000, 120_000} {
		in := []string{"repository:staging/app:" + manyActions(n)}
		b.Run("actions="+strconv.Itoa(n), func(b *testing.B) {
			for b.Loop() {
				if _, err := ParseScopes(in); !errors.Is(err, ErrScopeLimit) {
					b.Fatal(err)
				}
			}
		})
	}
}

// tokenError is the status and the codes of a refused token request: the
// OCI code, and the OAuth2 "error" (POST only).
func tokenError(t *testing.T, method, target, body string, hdr ...string) (status int, oci, oauth, msg string) {
	t.Helper()
	s := newTestService(t, nil)
	rec := serve(engine(s), method, target, body, hdr...)
	var b struct {
		Errors []struct{ Code, Message string }
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || len(b.Errors) == 0 {
		if rec.Code == http.StatusOK {
			return rec.Code, "", "", ""
		}
		t.Fatalf("%s %.80s: %d %s", method, target, rec.Code, rec.Body)
	}
	return rec.Code, b.Errors[0].Code, b.Error, b.Errors[0].Message
}

// TestTokenRequestLimits: the anonymous request of issue 10 (one scope,
// 120,000 actions) and requests just over the limits are refused with 400
// invalid_request, by GET and by the OAuth2 form.
func TestTokenRequestLimits(t *testing.T) {
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	post := func(scopes ...string) string {
		return url.Values{"grant_type": {"password"}, "username": {"ci"}, "password": {ciPass}, "scope": scopes}.Encode()
	}
	get := func(scopes ...string) string {
		return "/auth/token?" + url.Values{"service": {"slipway"}, "scope": scopes}.Encode()
	}
	burn := "repository:staging/app:" + manyActions(120_000)
	thirtyThree := scopesOf(MaxScopes + 1)
	seventeen := "repository:staging/app:" + manyActions(MaxScopeActions+1)
	for _, tc := range []struct {
		name, method, target, body string
		hdr                        []string
		want                       string // in the message
		status                     int    // 400 unless set
	}{
		{"GET 120,000 actions", http.MethodGet, "/auth/token?service=slipway&scope=" + burn, "", nil, "query string longer than", 0},
		// A form body over the limit is 413, as every other body over its limit.
		{"POST 120,000 actions", http.MethodPost, "/auth/token", post(burn), form, "larger than", http.StatusRequestEntityTooLarge},
		{"GET 33 scopes", http.MethodGet, get(thirtyThree...), "", nil, "too many scopes", 0},
		{"POST 33 scopes", http.MethodPost, "/auth/token", post(thirtyThree...), form, "too many scopes", 0},
		{"GET 17 actions", http.MethodGet, get(seventeen), "", basicHeader("ci", ciPass), "too many actions", 0},
		{"POST 17 actions", http.MethodPost, "/auth/token", post(seventeen), form, "too many actions", 0},
	} {
		status, oci, oauth, msg := tokenError(t, tc.method, tc.target, tc.body, tc.hdr...)
		wantOAuth := ""
		if tc.method == http.MethodPost {
			wantOAuth = "invalid_request"
		}
		wantStatus := cmp.Or(tc.status, http.StatusBadRequest)
		if status != wantStatus || oci != "UNSUPPORTED" || oauth != wantOAuth || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %s error=%q %q; want %d UNSUPPORTED error=%q with %q", tc.name, status, oci, oauth, msg, wantStatus, wantOAuth, tc.want)
		}
	}
	// At the limits, the same requests succeed.
	full := make([]string, MaxScopes)
	for i := range full {
		full[i] = "repository:staging/" + strings.Repeat("a", 240) + strconv.Itoa(i) + ":" + strings.TrimSuffix(strings.Repeat("pull,", MaxScopeActions), ",")
	}
	if status, _, _, msg := tokenError(t, http.MethodGet, get(full...), "", basicHeader("ci", ciPass)...); status != http.StatusOK {
		t.Errorf("GET at the limits, long names: %d %s", status, msg)
	}
	if status, _, _, msg := tokenError(t, http.MethodPost, "/auth/token", post(full...), form...); status != http.StatusOK {
		t.Errorf("POST at the limits, long names: %d %s", status, msg)
	}
}
