package auth

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/slipway/slipway/config"
)

func TestLoginInProcess(t *testing.T) {
	s := newTestService(t, func(o *Options) {
		o.Auth.Lockout = config.Lockout{MaxFailures: 2, AddressMaxFailures: 100, Window: time.Minute}
	})
	ctx := context.Background()
	p, err := s.Login(ctx, "ops", opsPass, "192.0.2.1")
	if err != nil || p != (Principal{Name: "ops", Admin: true}) {
		t.Fatalf("Login = %+v, %v", p, err)
	}
	for range 2 {
		if _, err := s.Login(ctx, "ci", "wrong", "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("bad password: %v", err)
		}
	}
	var th *ThrottledError
	if _, err := s.Login(ctx, "ci", ciPass, "192.0.2.1"); !errors.As(err, &th) || th.Wait <= 0 {
		t.Fatalf("after 2 failures: %v", err)
	}
}

func TestLookupBindingAndDeriveKey(t *testing.T) {
	s := newTestService(t, nil)
	ctx := context.Background()
	p, b1, err := s.Lookup(ctx, "ci")
	if err != nil || p.Name != "ci" || p.Admin || b1 == "" {
		t.Fatalf("Lookup ci = %+v %q %v", p, b1, err)
	}
	if _, _, err := s.Lookup(ctx, "nobody"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("Lookup nobody: %v", err)
	}
	if _, _, err := s.Lookup(ctx, "robot$ghost"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("Lookup robot$ghost: %v", err)
	}
	k1, k2 := s.DeriveKey("a"), s.DeriveKey("b")
	if len(k1) != 32 || bytes.Equal(k1, k2) || !bytes.Equal(k1, s.DeriveKey("a")) {
		t.Fatal("DeriveKey is not a per-purpose 32-byte key")
	}
}

func TestRobotAccountsInProcess(t *testing.T) {
	s := newTestService(t, nil)
	admin := WithPrincipal(context.Background(), Principal{Name: "ops", Admin: true})
	user := WithPrincipal(context.Background(), Principal{Name: "ci"})
	req := CreateRobotRequest{Name: "ci", Grants: []config.Grant{{Repos: "staging/*", Actions: []string{"pull"}}}, ExpiresIn: "24h"}
	if _, err := s.CreateRobotAccount(user, req); !errors.Is(err, ErrForbidden) {
		t.Fatalf("non-admin create: %v", err)
	}
	if _, err := s.ListRobotAccounts(user); !errors.Is(err, ErrForbidden) {
		t.Fatalf("non-admin list: %v", err)
	}
	if err := s.RevokeRobotAccount(user, "ci"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("non-admin revoke: %v", err)
	}
	c, err := s.CreateRobotAccount(admin, req)
	if err != nil || c.Secret == "" || c.Login != "robot$ci" || c.CreatedBy != "ops" || c.ExpiresAt == nil {
		t.Fatalf("create = %+v, %v", c, err)
	}
	var re *RobotError
	if _, err := s.CreateRobotAccount(admin, req); !errors.As(err, &re) || re.Status != http.StatusConflict {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := s.CreateRobotAccount(admin, CreateRobotRequest{Name: "Bad"}); !errors.As(err, &re) || re.Status != http.StatusBadRequest {
		t.Fatalf("bad name: %v", err)
	}
	_, bind1, err := s.Lookup(admin, "robot$ci")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := s.Login(admin, "robot$ci", c.Secret, "192.0.2.9"); err != nil || !p.Robot {
		t.Fatalf("robot login: %+v %v", p, err)
	}
	list, err := s.ListRobotAccounts(admin)
	if err != nil || len(list) != 1 || list[0].Name != "ci" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if err := s.RevokeRobotAccount(admin, "robot$ci"); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeRobotAccount(admin, "ci"); !errors.Is(err, ErrRobotNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if _, _, err := s.Lookup(admin, "robot$ci"); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("revoked robot: %v", err)
	}
	if _, err := s.CreateRobotAccount(admin, req); err != nil {
		t.Fatal(err)
	}
	if _, bind2, _ := s.Lookup(admin, "robot$ci"); bind2 == bind1 {
		t.Fatal("a re-created robot has the old binding")
	}
}
