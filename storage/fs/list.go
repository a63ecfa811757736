package fs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/slipway/slipway/storage"
)

// List walks the tree lazily in key order and stops as soon as the page is
// full (plus one entry, to know whether it is truncated). Subtrees wholly
// at or before StartAfter are skipped without being read.
func (s *Store) List(ctx context.Context, opts storage.ListOptions) (storage.ListPage, error) {
	w, err := s.walk(ctx, opts)
	if err != nil {
		return storage.ListPage{}, err
	}
	return w.page, nil
}

// walk runs a listing and returns the walker, whose counters tests inspect.
func (s *Store) walk(ctx context.Context, opts storage.ListOptions) (*walker, error) {
	if opts.Delimiter != "" && opts.Delimiter != "/" {
		return nil, fmt.Errorf("fs: list: unsupported delimiter %q", opts.Delimiter)
	}
	w := &walker{ctx: ctx, s: s, opts: opts, max: opts.MaxKeys}
	if w.max <= 0 {
		w.max = 1000
	}
	// A prefix no valid key can start with matches nothing; checking it
	// also keeps "../" and friends from escaping the root.
	if opts.Prefix != "" && !storage.ValidKey(opts.Prefix) && !storage.ValidKey(opts.Prefix+"x") {
		return w, nil
	}
	// Start in the directory named by the prefix's complete components;
	// its last, possibly partial, component filters that directory only.
	cut := strings.LastIndexByte(opts.Prefix, '/') + 1
	if _, err := w.dir(opts.Prefix[:cut], opts.Prefix[cut:]); err != nil {
		return nil, fmt.Errorf("fs: list %q: %w", opts.Prefix, err)
	}
	return w, nil
}

type walker struct {
	ctx  context.Context
	s    *Store
	opts storage.ListOptions
	max  int
	page storage.ListPage
	read int // directories read, to check the walk stays lazy
}

// entry is a directory entry that can be part of a key.
type entry struct {
	name  string
	isDir bool
}

// sortName orders entries as their keys order: directory "b" holds keys
// "b/…", so it sorts as "b/" — after "b-c" and "b.c", before "b0".
func (e entry) sortName() string {
	if e.isDir {
		return e.name + "/"
	}
	return e.name
}

// readDir returns rel's key-forming entries in key order. A missing
// directory (pruned concurrently, or the prefix names nothing) is empty.
func (w *walker) readDir(rel string) ([]entry, error) {
	w.read++
	des, err := os.ReadDir(filepath.Join(w.s.root, filepath.FromSlash(rel)))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]entry, 0, len(des))
	for _, de := range des {
		// Names outside the key alphabet (the internal dir among them)
		// are never keys; symlinks and devices are not objects.
		if !storage.ValidKey(de.Name()) {
			continue
		}
		switch {
		case de.IsDir():
			out = append(out, entry{de.Name(), true})
		case de.Type().IsRegular():
			out = append(out, entry{de.Name(), false})
		}
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.sortName(), b.sortName()) })
	return out, nil
}

// dir visits the keys under rel (a "" or "/"-terminated key prefix) whose
// next component starts with namePrefix. It returns true once the page is
// complete.
func (w *walker) dir(rel, namePrefix string) (done bool, err error) {
	entries, err := w.readDir(rel)
	if err != nil {
		return false, err
	}
	after := w.opts.StartAfter
	for _, e := range entries {
		if err := w.ctx.Err(); err != nil {
			return false, err
		}
		if !strings.HasPrefix(e.name, namePrefix) {
			continue
		}
		key := rel + e.name
		if !e.isDir {
			if key <= after {
				continue
			}
			if done, err := w.object(key); done || err != nil {
				return done, err
			}
			continue
		}
		sub := key + "/"
		if w.opts.Delimiter == "/" {
			// The whole group is one entry; it was on an earlier page
			// if it sorts at or before StartAfter.
			if sub <= after {
				continue
			}
			if ok, err := w.nonEmpty(sub); err != nil || !ok {
				if err != nil {
					return false, err
				}
				continue
			}
			if w.emit() {
				return true, nil
			}
			w.page.CommonPrefixes = append(w.page.CommonPrefixes, sub)
			continue
		}
		// Every key under sub is sub+…; if sub sorts before StartAfter
		// without being its prefix, all of them do: skip unread.
		if sub <= after && !strings.HasPrefix(after, sub) {
			continue
		}
		if done, err := w.dir(sub, ""); done || err != nil {
			return done, err
		}
	}
	return false, nil
}

// object adds key's Info to the page; a file that vanished meanwhile is
// simply not listed.
func (w *walker) object(key string) (done bool, err error) {
	fi, err := os.Lstat(filepath.Join(w.s.root, filepath.FromSlash(key)))
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if w.emit() {
		return true, nil
	}
	w.page.Objects = append(w.page.Objects, info(key, fi))
	return false, nil
}

// emit accounts for one more entry; it returns true (and marks the page
// truncated) when that entry does not fit.
func (w *walker) emit() bool {
	if len(w.page.Objects)+len(w.page.CommonPrefixes) >= w.max {
		w.page.Truncated = true
		return true
	}
	return false
}

// nonEmpty reports whether any object lives under rel, so an empty
// directory left by a racing Delete is not reported as a common prefix.
func (w *walker) nonEmpty(rel string) (bool, error) {
	entries, err := w.readDir(rel)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if !e.isDir {
			return true, nil
		}
		if ok, err := w.nonEmpty(rel + e.name + "/"); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}
