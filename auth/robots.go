package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/storage"
)

// robotsPrefix holds one object per robot account: auth/robots/<name>.
const robotsPrefix = "auth/robots/"

// lastUsedEvery: a robot's last-used time is written at most this often
// (per replica), in the background, never once per token.
const lastUsedEvery = time.Minute

var robotName = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// ValidRobotName reports whether name may name a robot (without "robot$").
func ValidRobotName(name string) bool { return len(name) <= 64 && robotName.MatchString(name) }

// Robot is a robot account as stored and as the API shows it (the API
// never shows SecretSHA256).
type Robot struct {
	// ID is random and new for every robot: refresh tokens are bound to
	// it, so a revoked robot re-created under the same name does not
	// revive them.
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Description  string         `json:"description,omitempty"`
	Grants       []config.Grant `json:"grants"`
	CreatedAt    time.Time      `json:"created_at"`
	CreatedBy    string         `json:"created_by"`
	ExpiresAt    *time.Time     `json:"expires_at,omitempty"`
	LastUsedAt   *time.Time     `json:"last_used_at,omitempty"`
	SecretSHA256 string         `json:"secret_sha256,omitempty"`
}

// Login is the name a robot logs in with.
func (r *Robot) Login() string { return RobotPrefix + r.Name }

func (r *Robot) expired(now time.Time) bool {
	return r.ExpiresAt != nil && !now.Before(*r.ExpiresAt)
}

func (r *Robot) account() *Account {
	return &Account{Name: r.Login(), Robot: true, Grants: r.Grants, bind: r.ID}
}

// robots is the robot-account store.
type robots struct {
	store storage.Store
	now   func() time.Time
	log   *slog.Logger

	mu      sync.Mutex
	touched map[string]time.Time // name -> last time this replica wrote last-used
	closed  bool
	writes  sync.WaitGroup
}

func robotKey(name string) string { return robotsPrefix + name }

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return b64.EncodeToString(sum[:])
}

// errRobotExists: create found a robot of that name.
var errRobotExists = errors.New("robot exists")

// create stores a new robot and returns it with its secret, which exists
// nowhere else: only its SHA-256 is stored.
func (rs *robots) create(ctx context.Context, r Robot) (Robot, string, error) {
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	secret := b64.EncodeToString(raw[:])
	r.ID = rand.Text()
	r.SecretSHA256 = hashSecret(secret)
	r.CreatedAt = rs.now().UTC().Truncate(time.Second)
	body, err := json.Marshal(r)
	if err != nil {
		return Robot{}, "", err
	}
	_, err = rs.store.PutIfAbsent(ctx, robotKey(r.Name), bytes.NewReader(body), int64(len(body)))
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return Robot{}, "", errRobotExists
	}
	if err != nil {
		return Robot{}, "", err
	}
	return r, secret, nil
}

// get reads a robot and the version of its record.
func (rs *robots) get(ctx context.Context, name string) (*Robot, string, error) {
	if !ValidRobotName(name) {
		return nil, "", storage.ErrNotFound
	}
	rc, info, err := rs.store.Get(ctx, robotKey(name), storage.GetOptions{})
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	var r Robot
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&r); err != nil {
		return nil, "", fmt.Errorf("robot %s: damaged record: %w", name, err)
	}
	return &r, info.ETag, nil
}

// list returns every robot, by name.
func (rs *robots) list(ctx context.Context) ([]*Robot, error) {
	var out []*Robot
	opts := storage.ListOptions{Prefix: robotsPrefix}
	for {
		page, err := rs.store.List(ctx, opts)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			r, _, err := rs.get(ctx, o.Key[len(robotsPrefix):])
			if errors.Is(err, storage.ErrNotFound) {
				continue // revoked meanwhile
			}
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		if !page.Truncated || len(page.Objects) == 0 {
			return out, nil
		}
		opts.StartAfter = page.Objects[len(page.Objects)-1].Key
	}
}

// revoke deletes a robot: it gets no new token from then on, and its
// refresh tokens stop working (every refresh reads the record).
func (rs *robots) revoke(ctx context.Context, name string) error {
	if _, _, err := rs.get(ctx, name); err != nil {
		return err
	}
	return rs.store.Delete(ctx, robotKey(name))
}

// authenticate checks a robot's secret in constant time.
func (rs *robots) authenticate(ctx context.Context, name, secret string) (*Account, error) {
	r, _, err := rs.get(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(hashSecret("")))
		return nil, errBadCredentials
	}
	if err != nil {
		return nil, err
	}
	match := subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(r.SecretSHA256)) == 1
	if !match || r.expired(rs.now()) {
		return nil, errBadCredentials
	}
	rs.touch(r.Name, r.ID)
	return r.account(), nil
}

// touch records that a robot was used. At most once a minute per robot,
// a background write stores the time; a token never waits for it.
func (rs *robots) touch(name, id string) {
	now := rs.now()
	rs.mu.Lock()
	if last, ok := rs.touched[name]; rs.closed || ok && now.Sub(last) < lastUsedEvery {
		rs.mu.Unlock()
		return
	}
	rs.touched[name] = now
	rs.writes.Add(1)
	rs.mu.Unlock()
	go func() {
		defer rs.writes.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rs.writeLastUsed(ctx, name, id, now); err != nil {
			rs.log.Warn("recording a robot's last use", "robot", name, "error", err.Error())
		}
	}()
}

// writeLastUsed sets last_used_at with compare-and-set, so it never
// resurrects a revoked robot nor overwrites a re-created one.
func (rs *robots) writeLastUsed(ctx context.Context, name, id string, at time.Time) error {
	for range 3 {
		r, etag, err := rs.get(ctx, name)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if r.ID != id || r.LastUsedAt != nil && !r.LastUsedAt.Before(at) {
			return nil
		}
		t := at.UTC().Truncate(time.Second)
		r.LastUsedAt = &t
		body, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = rs.store.PutIfMatch(ctx, robotKey(name), bytes.NewReader(body), int64(len(body)), etag)
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return err
		}
	}
	return nil
}

// close waits for background writes and starts no more.
func (rs *robots) close() {
	rs.mu.Lock()
	rs.closed = true
	rs.mu.Unlock()
	rs.writes.Wait()
}
