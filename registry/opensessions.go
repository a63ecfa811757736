package registry

// Bounds on what one account can hold in upload sessions: at most
// Options.MaxOpenPerAccount sessions holding data at once, and new sessions
// (POST /v2/<name>/blobs/uploads/) at most Options.SessionRate per second
// with bursts of Options.SessionBurst. Both answer 429 TOOMANYREQUESTS.
//
// Design. Replicas share nothing but the store, behind a round-robin load
// balancer, and a push must not pay an S3 request for the bookkeeping. So
// each replica counts on its own, and uses the store only when a count
// reaches the cap:
//
//   - A session starts holding data with its first chunk (a POST stores
//     nothing, uploadid.go). The replica that writes that chunk takes a
//     slot for the account (memory only); it refuses the chunk, before
//     reading its body, when the account already has MaxOpenPerAccount.
//     Later chunks take no slot: the session already has one, somewhere.
//   - The replica that commits or cancels a session frees its slot if it
//     holds it (memory only). That covers a single replica, and a pushing
//     client whose PATCH and PUT land on the same replica.
//   - A slot whose session was committed or cancelled through another
//     replica stays taken here, so a count only ever errs high. When an
//     account reaches the cap, the replica asks the store about its slots
//     (stillOpen below: one to three small reads each, in parallel, one
//     round per account at a time) and frees those whose session no longer
//     takes data. A slot found open is not asked about again for
//     openRecheck, so an account sitting at its cap costs at most one round
//     per openRecheck, not one per request. If a read fails, the chunk is
//     let through: the store is failing anyway, and a legitimate push must
//     not be refused for it.
//   - A slot ends by itself when its upload id expires (issued +
//     uploads.purge_after): no request can add to the session after that.
//
// For the store to tell a finished session from an open one, a session
// committed through a replica that does not hold its slot keeps its closed
// state object when its first chunk is an implicit first segment followed
// by more (uploads.endCommitted): without it, the first chunk's data object alone
// looks exactly like a session holding one chunk. Purge removes that
// object after uploads.purge_after, as it does any session's.
//
// What this does not do, knowingly:
//   - Per replica: N replicas let an account hold N × MaxOpenPerAccount
//     sessions, and open N × SessionRate per second. A replica's restart
//     forgets its slots (the sessions are then counted nowhere until they
//     end). The bound is a bound on abuse, not an exact quota.
//   - A cancelled session whose first chunk may still be committed
//     elsewhere keeps that chunk until purge (uploads.drop); its slot is
//     freed all the same. The session rate bounds how fast that churn
//     can go.
//   - A one-request upload (POST ?digest=, or a PUT with the whole body on
//     an empty session) takes no slot: it never leaves a session open.

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/slipway/slipway/storage"
)

// openRecheck: a slot the store said was open is not asked about again
// for this long.
const openRecheck = 15 * time.Second

// openCheckParallel bounds the store reads of one round, and
// openCheckTimeout its time.
const (
	openCheckParallel = 8
	openCheckTimeout  = 30 * time.Second
)

// rateLimiterEntries bounds the accounts whose session rate is tracked; an
// evicted account starts again with a full burst.
const rateLimiterEntries = 1 << 14

// sessionLimits is one replica's bookkeeping (see above).
type sessionLimits struct {
	max      int
	rate     rate.Limit // 0: no limit
	burst    int
	limiters *lru.Cache[string, *rate.Limiter]

	mu       sync.Mutex
	accounts map[string]*accountSlots
	owner    map[string]string // upload id → account holding its slot
}

// accountSlots are the slots of one account on this replica.
type accountSlots struct {
	open map[string]*slot // by upload id
	// checking is set while a round of store reads runs for the account,
	// and closed when it ends.
	checking chan struct{}
}

// slot is a session holding data, as this replica knows it.
type slot struct {
	first   segment   // its implicit first segment (Digest set), if any
	expires time.Time // its id's expiry: no data after that
	checked time.Time // when the store last said it is open (zero: never asked)
	// writers are the requests writing a first chunk to it (a client may
	// race two); while there are any it is not checkable.
	writers int
	held    bool // a first chunk was written
}

func newSessionLimits(opts Options) *sessionLimits {
	l := &sessionLimits{max: opts.MaxOpenPerAccount, burst: max(opts.SessionBurst, 1),
		accounts: map[string]*accountSlots{}, owner: map[string]string{}}
	if opts.SessionRate > 0 {
		l.rate = rate.Limit(opts.SessionRate)
		l.limiters, _ = lru.New[string, *rate.Limiter](rateLimiterEntries)
	}
	return l
}

// tooManyError is a bound reached: 429 TOOMANYREQUESTS, with the
// Retry-After to send.
type tooManyError struct {
	retryAfter time.Duration
	msg        string
}

func (e *tooManyError) Error() string { return e.msg }

// answer is the error in OCI terms, with its Retry-After header set on c.
func (e *tooManyError) answer(c *gin.Context) *apiError {
	secs := max(1, int(math.Ceil(e.retryAfter.Seconds())))
	c.Header("Retry-After", strconv.Itoa(secs))
	return oci(errcode.ErrorCodeTooManyRequests, e.msg, nil)
}

// account is who a request is for ("" without Options.Account).
func (r *Registry) account(c *gin.Context) string {
	if r.opts.Account == nil {
		return ""
	}
	return r.opts.Account(c.Request)
}

// allowNewSession takes a token of the account's session rate; false: it
// answered 429.
func (r *Registry) allowNewSession(c *gin.Context) bool {
	l := r.sessions.limits
	if l.rate == 0 {
		return true
	}
	acct := r.account(c)
	lim, ok := l.limiters.Get(acct)
	if !ok {
		// Two first requests may race here: the limiter stored first
		// wins, and both use it.
		lim = rate.NewLimiter(l.rate, l.burst)
		if prev, found, _ := l.limiters.PeekOrAdd(acct, lim); found {
			lim = prev
		}
	}
	res := lim.Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		tm := &tooManyError{retryAfter: d, msg: "too many new upload sessions for this account, retry later"}
		r.fail(c, tm.answer(c))
		return false
	}
	return true
}

// atCapMessage answers a first chunk over the account's cap.
const atCapMessage = "this account has too many unfinished blob uploads holding data; finish or cancel some, or retry later"

// takeSlot reserves a slot of account acct for session st (about to
// receive its first chunk). It returns a function to call once the chunk
// is written (or not), with the session as it then is; or a *tooManyError
// when the account is at its cap.
func (u *uploads) takeSlot(ctx context.Context, acct string, st *session) (func(*session), error) {
	l := u.limits
	if l.max <= 0 {
		return func(*session) {}, nil
	}
	expires := st.started.Add(u.ttl)
	if !signedForm(st.id) { // legacy id: no issued time
		expires = time.Now().Add(u.ttl)
	}
	var s *slot
	settle := func(now *session) { l.settle(acct, st.id, s, now) }
	for asked := false; ; {
		l.mu.Lock()
		a := l.slots(acct)
		if len(a.open) >= l.max {
			l.dropExpired(a, time.Now())
		}
		if s = l.join(acct, st.id); s != nil || len(a.open) < l.max {
			if s == nil {
				s = l.add(acct, a, st.id, expires)
			}
			l.mu.Unlock()
			return settle, nil
		}
		if ch := a.checking; ch != nil {
			// Another request is asking the store: its answer is ours.
			l.mu.Unlock()
			select {
			case <-ch:
				asked = true
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		due := l.due(a, time.Now())
		if asked || len(due) == 0 {
			l.mu.Unlock()
			return nil, &tooManyError{retryAfter: openRecheck, msg: atCapMessage}
		}
		ch := make(chan struct{})
		a.checking = ch
		l.mu.Unlock()
		failed := u.checkSlots(ctx, acct, due)
		l.mu.Lock()
		a.checking = nil
		close(ch)
		if failed && len(a.open) >= l.max {
			// The store could not answer: let the chunk through (see above).
			s = l.add(acct, a, st.id, expires)
			l.mu.Unlock()
			return settle, nil
		}
		l.mu.Unlock()
		asked = true
	}
}

// slots returns the account's slots, created empty. Call with l.mu held.
func (l *sessionLimits) slots(acct string) *accountSlots {
	a := l.accounts[acct]
	if a == nil {
		a = &accountSlots{open: map[string]*slot{}}
		l.accounts[acct] = a
	}
	return a
}

// join returns the slot the account already holds for id (another first
// chunk of the session is being written, or was refused a
// compare-and-set), counted as one more writer; nil if none. Call with
// l.mu held.
func (l *sessionLimits) join(acct, id string) *slot {
	if owner, ok := l.owner[id]; !ok || owner != acct {
		return nil
	}
	s := l.accounts[acct].open[id]
	s.writers++
	return s
}

// add takes a new slot for id, with one writer. Call with l.mu held.
func (l *sessionLimits) add(acct string, a *accountSlots, id string, expires time.Time) *slot {
	if _, ok := l.owner[id]; ok { // another account's: the session has one slot
		l.removeLocked(id)
		a = l.slots(acct)
	}
	s := &slot{expires: expires, writers: 1}
	a.open[id] = s
	l.owner[id] = acct
	return s
}

// settle ends one writer's first chunk: the slot stays once a first chunk
// is written, and goes when its last writer wrote nothing (the chunk
// failed or was empty).
func (l *sessionLimits) settle(acct, id string, s *slot, st *session) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.accounts[acct]
	if a == nil || a.open[id] != s {
		return // freed meanwhile (a commit or cancel raced the chunk)
	}
	s.writers--
	if st != nil && (st.state != sessionNew || len(st.segs) > 0) {
		s.held = true
		if first, ok := st.implicitFirst(); ok {
			s.first = first
		}
	}
	if s.writers == 0 && !s.held {
		l.removeLocked(id)
	}
}

// release frees the slot of a session that was committed or cancelled,
// and reports whether this replica held it.
func (u *uploads) release(id string) bool {
	l := u.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	_, held := l.owner[id]
	l.removeLocked(id)
	return held
}

func (l *sessionLimits) removeLocked(id string) {
	acct, ok := l.owner[id]
	if !ok {
		return
	}
	delete(l.owner, id)
	if a := l.accounts[acct]; a != nil {
		delete(a.open, id)
		if len(a.open) == 0 && a.checking == nil {
			delete(l.accounts, acct)
		}
	}
}

func (l *sessionLimits) dropExpired(a *accountSlots, now time.Time) {
	for id, s := range a.open {
		if now.After(s.expires) {
			delete(a.open, id)
			delete(l.owner, id)
		}
	}
}

// due lists the slots to ask the store about, and marks them asked (so a
// concurrent round does not pick them again). Call with l.mu held.
func (l *sessionLimits) due(a *accountSlots, now time.Time) map[string]slot {
	due := map[string]slot{}
	for id, s := range a.open {
		if s.writers == 0 && now.Sub(s.checked) >= openRecheck {
			due[id] = *s
			s.checked = now
		}
	}
	return due
}

// checkSlots asks the store which of the account's due slots still hold an
// open session and frees the others. It reports whether a read failed.
func (u *uploads) checkSlots(ctx context.Context, acct string, due map[string]slot) (failed bool) {
	var mu sync.Mutex
	var done []string
	// The round outlives the request that started it (others wait on it),
	// within a bound of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), openCheckTimeout)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(openCheckParallel)
	for id, s := range due {
		g.Go(func() error {
			open, err := u.stillOpen(gctx, id, s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = true
			} else if !open {
				done = append(done, id)
			}
			return nil
		})
	}
	_ = g.Wait()
	l := u.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range done {
		if l.owner[id] == acct {
			l.removeLocked(id)
		}
	}
	if failed {
		u.logger.WarnContext(ctx, "could not check an account's open upload sessions in the store; letting a first chunk through", "account", acct)
	}
	return failed
}

// stillOpen asks the store whether a session that held data can still
// take data (it is neither committed nor cancelled):
//
//  1. its state object: present, it says (closed or not);
//  2. absent, and the session's first chunk is an implicit first segment:
//     committed if the blob of its digest names it;
//  3. otherwise open while that first segment's data exists (a session
//     committed with more chunks kept its state object, see above; one
//     cancelled or committed as a duplicate lost its data).
//
// A session without an implicit first segment whose state object is gone
// was committed or cancelled (or purged).
func (u *uploads) stillOpen(ctx context.Context, id string, s slot) (bool, error) {
	b, _, err := u.meta.readSmall(ctx, uploadKey(id), 4<<20)
	if err == nil {
		st, err := decodeSession(b, id, true)
		if err != nil {
			return false, err
		}
		return st.state.takesData(), nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	if s.first.Digest == "" {
		return false, nil
	}
	bd, err := u.meta.blob(ctx, s.first.Digest)
	if err == nil {
		for _, seg := range bd.segments() {
			if seg.Key == s.first.Key {
				return false, nil
			}
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	_, err = u.store.Stat(ctx, s.first.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// openSlots is how many slots the account holds on this replica (tests).
func (u *uploads) openSlots(acct string) int {
	u.limits.mu.Lock()
	defer u.limits.mu.Unlock()
	if a := u.limits.accounts[acct]; a != nil {
		return len(a.open)
	}
	return 0
}

// slotForChunk takes a slot of account acct when the chunk about to be
// appended is the session's first data (see takeSlot); the function it
// returns settles it with appendChunk's result.
func (u *uploads) slotForChunk(ctx context.Context, acct string, st *session, size int64) (func(*session, error), error) {
	if st.state != sessionNew || len(st.segs) > 0 || size == 0 {
		return func(*session, error) {}, nil
	}
	settle, err := u.takeSlot(ctx, acct, st)
	if err != nil {
		return nil, err
	}
	return func(now *session, err error) {
		if err != nil {
			now = nil
		}
		settle(now)
	}, nil
}

// endCommitted frees a committed session's slot and its state: its state
// object, if stored, is deleted after the response, except the one case
// the store needs it to tell the session finished (see above): a session
// whose implicit first segment has company, committed through a replica
// that does not hold its slot while slots are counted.
func (u *uploads) endCommitted(st *session) {
	held := u.release(st.id)
	_, implicit := st.implicitFirst()
	keep := u.limits.max > 0 && !held && len(st.segs) > 1 && implicit
	if st.state != sessionNew && !keep {
		u.dropLater(st.id)
		return
	}
	u.forget(st.id)
}
