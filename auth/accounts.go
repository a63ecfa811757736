package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage"
)

// RobotPrefix starts the login name of every robot account: robot$ci.
const RobotPrefix = "robot$"

// bootstrapAdminKey holds the admin created on first start when no users
// are configured. It is written once (PutIfAbsent), so every replica and
// every restart agree on it.
const bootstrapAdminKey = "auth/users/admin"

// dummyHash returns a hash to compare against when an account does not
// exist, so that a wrong name costs as long as a wrong password: made once,
// on first need, with the highest cost among the accounts' hashes.
func dummyHash(users map[string]*user) func() []byte {
	return sync.OnceValue(func() []byte {
		cost := bcrypt.MinCost
		for _, u := range users {
			if c, err := bcrypt.Cost(u.hash); err == nil && c > cost {
				cost = c
			}
		}
		h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
		if err != nil {
			return nil // the comparison then fails fast; it fails anyway
		}
		return h
	})
}

// Account is someone who may log in.
type Account struct {
	Name   string // login name: "ci", "robot$ci"
	Admin  bool
	Robot  bool
	Grants []config.Grant
	// Detail describes a workload beyond its name: an ID token's chosen
	// claims ("repository=acme/api ref=refs/tags/v1.4"), for the ledger.
	Detail string
	// bind is what a refresh token is tied to: a robot's random id, or a
	// fingerprint of a user's password hash. When it changes (robot
	// revoked and re-created, password changed), old refresh tokens stop.
	bind string
}

// user is a password account (from the configuration, or the bootstrap
// admin).
type user struct {
	Account
	hash []byte
}

// userRecord is the bootstrap admin as stored.
type userRecord struct {
	Name         string    `json:"name"`
	PasswordHash string    `json:"password_hash"`
	Admin        bool      `json:"admin"`
	CreatedAt    time.Time `json:"created_at"`
}

func newUser(name string, hash []byte, admin bool, grants []config.Grant) *user {
	fp := sha256.Sum256(append([]byte(name+"\x00"), hash...))
	return &user{Account: Account{Name: name, Admin: admin, Grants: grants, bind: b64.EncodeToString(fp[:16])}, hash: hash}
}

// loadUsers returns the configured users; with none configured, the
// bootstrap admin, created in the store if it is not there yet.
func (s *Service) loadUsers(ctx context.Context) (map[string]*user, error) {
	users := map[string]*user{}
	for _, u := range s.opts.Auth.Users {
		users[u.Name] = newUser(u.Name, []byte(u.PasswordHash), u.Admin, u.Grants)
	}
	if len(users) > 0 {
		return users, nil
	}
	rec, err := s.bootstrapAdmin(ctx)
	if err != nil {
		return nil, fmt.Errorf("auth: first-start admin: %w", err)
	}
	users[rec.Name] = newUser(rec.Name, []byte(rec.PasswordHash), true, nil)
	return users, nil
}

// bootstrapAdmin reads the stored admin, or creates it: with the password
// from SLIPWAY_ADMIN_PASSWORD, else a random one that only the replica that
// created it logs, once.
func (s *Service) bootstrapAdmin(ctx context.Context) (userRecord, error) {
	if rec, err := s.readAdmin(ctx); err == nil {
		if pw := s.opts.Auth.AdminPassword; pw != "" && s.compare([]byte(rec.PasswordHash), []byte(pw)) != nil {
			s.log.Warn("the admin account already exists: " + config.AdminPasswordEnv + " is ignored (delete " + bootstrapAdminKey + " from the store to reset it)")
		}
		return rec, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return userRecord{}, err
	}
	pw, generated := s.opts.Auth.AdminPassword, false
	if pw == "" {
		pw, generated = rand.Text(), true
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return userRecord{}, err
	}
	rec := userRecord{Name: "admin", PasswordHash: string(hash), Admin: true, CreatedAt: s.now().UTC()}
	body, _ := json.Marshal(rec)
	_, err = s.store.PutIfAbsent(ctx, bootstrapAdminKey, bytes.NewReader(body), int64(len(body)))
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return s.readAdmin(ctx) // another replica was first: its admin stands
	}
	if err != nil {
		return userRecord{}, err
	}
	if generated {
		s.log.Warn("no users are configured: created the account \"admin\" with a generated password, shown only this once; "+
			"log in and create robot accounts, or configure auth.users", "user", "admin", "password", pw)
	} else {
		s.log.Info("no users are configured: created the account \"admin\" with the password from "+config.AdminPasswordEnv, "user", "admin")
	}
	return rec, nil
}

func (s *Service) readAdmin(ctx context.Context) (userRecord, error) {
	rc, _, err := s.store.Get(ctx, bootstrapAdminKey, storage.GetOptions{})
	if err != nil {
		return userRecord{}, err
	}
	defer rc.Close()
	var rec userRecord
	if err := json.NewDecoder(io.LimitReader(rc, 1<<16)).Decode(&rec); err != nil || !config.ValidBcryptHash(rec.PasswordHash) {
		return userRecord{}, fmt.Errorf("%s is damaged: %v", bootstrapAdminKey, err)
	}
	rec.Name = "admin"
	return rec, nil
}

// errBadCredentials: unknown account, wrong password or secret, expired
// robot. Callers never say which.
var errBadCredentials = errors.New("incorrect username or password")

// throttledError: too many failures; try again after the wait.
type throttledError struct{ wait time.Duration }

func (e *throttledError) Error() string { return "too many failed logins" }

// authenticate checks a login name and password (or robot secret). Failed
// attempts are counted per account and per client address; past the limit
// it refuses before checking anything.
func (s *Service) authenticate(ctx context.Context, name, password, addr string) (*Account, error) {
	if wait := s.throttle.wait(name, addr); wait > 0 {
		return nil, &throttledError{wait: wait}
	}
	var acct *Account
	var err error
	if robot, ok := strings.CutPrefix(name, RobotPrefix); ok {
		acct, err = s.robots.authenticate(ctx, robot, password)
	} else {
		acct, err = s.checkPassword(name, password)
	}
	switch {
	case errors.Is(err, errBadCredentials):
		s.throttle.fail(name, addr)
		s.log.InfoContext(ctx, "login failed", "account", truncate(name, 64), "remote", addr)
		return nil, err
	case err != nil:
		return nil, err
	}
	s.throttle.succeed(name)
	return acct, nil
}

// checkPassword verifies a user's password: with bcrypt the first time,
// then, for credential_cache_ttl, against a keyed hash of the password
// that last verified, so a pull of many layers costs one bcrypt at most.
func (s *Service) checkPassword(name, password string) (*Account, error) {
	u, ok := s.users[name]
	if !ok {
		_ = s.compare(s.dummyHash(), []byte(password))
		return nil, errBadCredentials
	}
	if s.creds.verified(name, u.hash, password) {
		return &u.Account, nil
	}
	if s.compare(u.hash, []byte(password)) != nil {
		return nil, errBadCredentials
	}
	s.creds.remember(name, u.hash, password)
	return &u.Account, nil
}

// credCache remembers verified passwords as HMAC-SHA-256 under a key that
// lives only in this process's memory: nothing in it can be reversed
// offline, and comparisons are constant-time.
type credCache struct {
	ttl time.Duration
	now func() time.Time
	key [32]byte

	mu      sync.Mutex
	entries map[string]credEntry
}

type credEntry struct {
	hash  string // the bcrypt hash it was verified against
	mac   []byte
	until time.Time
}

func newCredCache(ttl time.Duration, now func() time.Time) *credCache {
	c := &credCache{ttl: ttl, now: now, entries: map[string]credEntry{}}
	_, _ = rand.Read(c.key[:])
	return c
}

func (c *credCache) mac(password string) []byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(password))
	return m.Sum(nil)
}

func (c *credCache) verified(name string, hash []byte, password string) bool {
	if c.ttl <= 0 {
		return false
	}
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if !ok || e.hash != string(hash) || !c.now().Before(e.until) {
		return false
	}
	return hmac.Equal(e.mac, c.mac(password))
}

func (c *credCache) remember(name string, hash []byte, password string) {
	if c.ttl <= 0 {
		return
	}
	e := credEntry{hash: string(hash), mac: c.mac(password), until: c.now().Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[name] = e // keyed by configured accounts only: bounded
}

// account finds a login name's account as it is now (nil if it does not
// exist or no longer may log in): for refresh tokens, and to tell "not
// allowed" from "token lacks scope".
func (s *Service) account(ctx context.Context, name string) (*Account, error) {
	if robot, ok := strings.CutPrefix(name, RobotPrefix); ok {
		rec, _, err := s.robots.get(ctx, robot)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if rec.expired(s.now()) {
			return nil, nil
		}
		return rec.account(), nil
	}
	if u, ok := s.users[name]; ok {
		return &u.Account, nil
	}
	return nil, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
