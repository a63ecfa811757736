package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway/slipway/storage"
)

// A small page of a big tree reads only the directories it needs: none
// before StartAfter, none after the first entry past the page.
func TestListIsLazy(t *testing.T) {
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", i))
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "0"), nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		opts      storage.ListOptions
		first     string
		wantReads int // root, the directory holding the hit, the next one
	}{
		{storage.ListOptions{MaxKeys: 1}, "d00/0", 3},
		{storage.ListOptions{MaxKeys: 1, StartAfter: "d40/0"}, "d41/0", 4}, // + d40 itself
		{storage.ListOptions{MaxKeys: 1, StartAfter: "d40/"}, "d40/0", 3},
		{storage.ListOptions{MaxKeys: 1, Prefix: "d2"}, "d20/0", 3},
	} {
		w, err := s.walk(t.Context(), tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(w.page.Objects) != 1 || w.page.Objects[0].Key != tc.first || !w.page.Truncated {
			t.Fatalf("List(%+v) = %+v, want %s, truncated", tc.opts, w.page, tc.first)
		}
		if w.read > tc.wantReads {
			t.Errorf("List(%+v) read %d directories, want at most %d", tc.opts, w.read, tc.wantReads)
		}
	}
}
