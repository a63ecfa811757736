package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/slipway/slipway/storage"
)

// In-process entry points for other packages of this binary (the admin
// pages, through admin.Accounts): the same accounts, throttling and robot
// store as the HTTP endpoints, without an HTTP round trip.

// ErrBadCredentials: unknown account, wrong password or secret, expired
// robot. It is the very error authenticate returns, so errors.Is works on
// both.
var ErrBadCredentials = errBadCredentials

// ErrNoAccount: the account a session names no longer exists or may no
// longer log in (revoked or expired robot, user removed from the config).
var ErrNoAccount = errors.New("the account no longer exists")

// ErrForbidden: the caller in the context is not an administrator.
var ErrForbidden = errors.New("only administrators may do this")

// ErrRobotNotFound: no robot of that name.
var ErrRobotNotFound = errors.New("no such robot")

// ThrottledError says a login was refused unchecked after too many
// failures; try again after Wait.
type ThrottledError struct{ Wait time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins: try again in %s", e.Wait.Round(time.Second))
}

// RobotError is a refused robot request: Status is the HTTP status the
// API answers with (400, 409), Message says why in words for people.
type RobotError struct {
	Status  int
	Message string
}

func (e *RobotError) Error() string { return e.Message }

// Login checks a name and password (or robot secret) exactly as the token
// endpoint does: throttled per account and per client address, bcrypt
// results cached. Errors: ErrBadCredentials, *ThrottledError, or a store
// failure.
func (s *Service) Login(ctx context.Context, name, password, clientIP string) (Principal, error) {
	acct, err := s.authenticate(ctx, name, password, clientIP)
	var throttled *throttledError
	if errors.As(err, &throttled) {
		return Principal{}, &ThrottledError{Wait: throttled.wait}
	}
	if err != nil {
		return Principal{}, err
	}
	return principalOf(acct), nil
}

// Lookup returns the account a login name has now, and a binding that
// changes when its credentials do (password changed, robot revoked and
// re-created): a session that stored the binding at login ends then.
// ErrNoAccount when the account is gone or expired.
func (s *Service) Lookup(ctx context.Context, name string) (Principal, string, error) {
	acct, err := s.account(ctx, name)
	if err != nil {
		return Principal{}, "", err
	}
	if acct == nil {
		return Principal{}, "", ErrNoAccount
	}
	sum := sha256.Sum256([]byte(acct.Name + "\x00" + acct.bind))
	return principalOf(acct), b64.EncodeToString(sum[:12]), nil
}

func principalOf(a *Account) Principal {
	return Principal{Name: a.Name, Admin: a.Admin, Robot: a.Robot}
}

// DeriveKey returns a 32-byte key for purpose, derived from the token
// signing key: every replica shares that key already, so state signed with
// the derived key (admin sessions) verifies on any of them, and it is no
// use for signing tokens.
func (s *Service) DeriveKey(purpose string) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(s.keys.signing.private)
	if err != nil {
		// Every key type loadSigningKey accepts marshals; fall back to the
		// public thumbprint only to stay total (never reached).
		der = []byte(s.keys.signing.kid)
	}
	m := hmac.New(sha256.New, der)
	m.Write([]byte("slipway derived key\x00" + purpose))
	return m.Sum(nil)
}

// CreateRobotAccount creates a robot as POST /api/v1/robots does; the
// caller in ctx must be an admin and is recorded as its creator. The
// secret in the answer exists nowhere else. Refusals are *RobotError.
func (s *Service) CreateRobotAccount(ctx context.Context, req CreateRobotRequest) (CreatedRobot, error) {
	p, err := requireAdmin(ctx)
	if err != nil {
		return CreatedRobot{}, err
	}
	robot, msg := s.newRobot(req)
	if msg != "" {
		return CreatedRobot{}, &RobotError{Status: http.StatusBadRequest, Message: msg}
	}
	robot.CreatedBy = p.Name
	created, secret, err := s.robots.create(ctx, robot)
	if errors.Is(err, errRobotExists) {
		return CreatedRobot{}, &RobotError{Status: http.StatusConflict, Message: fmt.Sprintf("a robot named %q exists", req.Name)}
	}
	if err != nil {
		return CreatedRobot{}, err
	}
	s.log.InfoContext(ctx, "robot account created", "robot", created.Name, "by", p.Name)
	return CreatedRobot{RobotView: viewOf(&created), Secret: secret}, nil
}

// ListRobotAccounts lists every robot by name (admins).
func (s *Service) ListRobotAccounts(ctx context.Context) ([]RobotView, error) {
	if _, err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	list, err := s.robots.list(ctx)
	if err != nil {
		return nil, err
	}
	views := make([]RobotView, 0, len(list))
	for _, r := range list {
		views = append(views, viewOf(r))
	}
	return views, nil
}

// RevokeRobotAccount deletes a robot (admins), as DELETE
// /api/v1/robots/<name> does. ErrRobotNotFound when there is none.
func (s *Service) RevokeRobotAccount(ctx context.Context, name string) error {
	p, err := requireAdmin(ctx)
	if err != nil {
		return err
	}
	name = strings.TrimPrefix(name, RobotPrefix)
	err = s.robots.revoke(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrRobotNotFound
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "robot account revoked", "robot", name, "by", p.Name)
	return nil
}

func requireAdmin(ctx context.Context) (Principal, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || !p.Admin {
		return Principal{}, ErrForbidden
	}
	return p, nil
}
