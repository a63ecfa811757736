package importer_test

import (
	"strings"
	"testing"

	"github.com/slipway/slipway/importer"
)

func TestStageMapLongestSourceWins(t *testing.T) {
	m, err := importer.ParseStageMap([]string{"team/=staging/", "team/legacy/=archive/", "team/app=production/web", "tools/=", "=other/"})
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]string{
		"team/api":            "staging/api",
		"team/legacy/db":      "archive/db",
		"team/app":            "production/web",
		"team/app/sub":        "staging/app/sub",
		"tools/lint":          "lint",
		"plain":               "other/plain",
		"teams/x":             "other/teams/x",
		"team/legacy/deep/er": "archive/deep/er",
	} {
		if got, err := m.Map(repo); got != want || err != nil {
			t.Errorf("Map(%s) = %q, %v; want %q", repo, got, err, want)
		}
	}
}

func TestStageMapKeepsUnmatchedAndRefusesBadNames(t *testing.T) {
	m, err := importer.ParseStageMap([]string{"old/=new/"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.Map("other/app"); got != "other/app" || err != nil {
		t.Fatalf("unmatched: %q %v", got, err)
	}
	strip, err := importer.ParseStageMap([]string{"old/="})
	if err != nil {
		t.Fatal(err)
	}
	long := "old/" + strings.Repeat("a", 250)
	if got, err := strip.Map(long); err != nil || got != strings.Repeat("a", 250) {
		t.Fatalf("strip: %q %v", got, err)
	}
	grow, _ := importer.ParseStageMap([]string{"old/=" + strings.Repeat("b", 20) + "/"})
	if _, err := grow.Map(long); err == nil || !strings.Contains(err.Error(), long) {
		t.Fatalf("a name made too long must be refused naming the repository: %v", err)
	}
	for _, bad := range [][]string{
		{"old/"}, {"old/=New/"}, {"old/=new"}, {"old=new/"}, {"Old=new"}, {"a/=b/", "a/=c/"}, {"/=x/"},
	} {
		if _, err := importer.ParseStageMap(bad); err == nil || !strings.Contains(err.Error(), "--stage-map") {
			t.Errorf("ParseStageMap(%q): want an error naming the flag, got %v", bad, err)
		}
	}
}
