package auth

import (
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// throttleEntries bounds the memory the throttle may use: an attacker
// spraying made-up account names evicts the oldest entries, never grows
// the process.
const throttleEntries = 100_000

// throttle counts failed logins per account and per client address. Once
// either reaches its maximum within a window, logins for it are refused
// (before any password is checked) until the window that began with its
// first failure ends.
type throttle struct {
	maxAccount, maxAddress int
	window                 time.Duration
	now                    func() time.Time

	mu      sync.Mutex
	entries *simplelru.LRU[string, *failures]
}

type failures struct {
	start time.Time
	count int
}

func newThrottle(maxAccount, maxAddress int, window time.Duration, now func() time.Time) *throttle {
	lru, _ := simplelru.NewLRU[string, *failures](throttleEntries, nil) // only fails for size <= 0
	return &throttle{maxAccount: maxAccount, maxAddress: maxAddress, window: window, now: now, entries: lru}
}

func accountKey(name string) string { return "a:" + strings.ToLower(name) }
func addressKey(addr string) string { return "i:" + addr }

// wait returns how long the account or address must wait before trying
// again (0: it may try now).
func (t *throttle) wait(account, addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	return max(t.waitFor(accountKey(account), t.maxAccount, now), t.waitFor(addressKey(addr), t.maxAddress, now))
}

func (t *throttle) waitFor(key string, limit int, now time.Time) time.Duration {
	f, ok := t.entries.Peek(key)
	if !ok || f.count < limit {
		return 0
	}
	return max(f.start.Add(t.window).Sub(now), 0)
}

// fail records a failed login.
func (t *throttle) fail(account, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.count(accountKey(account), now)
	t.count(addressKey(addr), now)
}

// succeed forgets an account's failures. Its address's are kept, so that
// one valid account cannot reset the limit for guessing others.
func (t *throttle) succeed(account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries.Remove(accountKey(account))
}

// waitAddress is wait for failures that belong to no account (a bad
// refresh token).
func (t *throttle) waitAddress(addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.waitFor(addressKey(addr), t.maxAddress, t.now())
}

// failAddress records a failure of an address alone.
func (t *throttle) failAddress(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count(addressKey(addr), t.now())
}

func (t *throttle) count(key string, now time.Time) {
	f, ok := t.entries.Get(key)
	if !ok || !now.Before(f.start.Add(t.window)) {
		f = &failures{start: now}
		t.entries.Add(key, f)
	}
	f.count++
}
