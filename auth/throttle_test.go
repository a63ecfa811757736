package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	th := newThrottle(3, 5, 10*time.Second, clk.Now)
	for range 3 {
		if w := th.wait("ci", "a"); w != 0 {
			t.Fatalf("waiting %v before the limit", w)
		}
		th.fail("CI", "a") // account names are counted case-insensitively
	}
	if w := th.wait("ci", "b"); w != 10*time.Second {
		t.Fatalf("account locked for %v, want 10s", w)
	}
	clk.Add(4 * time.Second)
	if w := th.wait("ci", "b"); w != 6*time.Second {
		t.Fatalf("wait %v after 4s, want 6s", w)
	}
	if w := th.wait("ops", "b"); w != 0 {
		t.Fatalf("another account waits %v", w)
	}
	// Address "a" has 3 failures; two more (any account) lock it.
	th.fail("x", "a")
	th.fail("y", "a")
	if w := th.wait("ops", "a"); w <= 0 {
		t.Fatal("address not locked after 5 failures")
	}
	clk.Add(6 * time.Second)
	if w := th.wait("ci", "b"); w != 0 {
		t.Fatalf("account still locked after the window: %v", w)
	}
	// A success forgets the account's failures, not the address's.
	th.fail("ops", "c")
	th.fail("ops", "c")
	th.succeed("ops")
	th.fail("ops", "c")
	if w := th.wait("ops", "d"); w != 0 {
		t.Fatal("success did not reset the account")
	}
	th.failAddress("c")
	th.failAddress("c")
	if w := th.waitAddress("c"); w <= 0 {
		t.Fatal("address failures without an account not counted")
	}
}

func TestAuthenticateThrottles(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	s := newTestService(t, func(o *Options) {
		o.Now = clk.Now
		o.Auth.Lockout.MaxFailures, o.Auth.Lockout.Window = 2, time.Minute
	})
	ctx := context.Background()
	for range 2 {
		if _, err := s.authenticate(ctx, "ci", "wrong", "10.0.0.1"); !errors.Is(err, errBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	var th *throttledError
	if _, err := s.authenticate(ctx, "ci", ciPass, "10.0.0.1"); !errors.As(err, &th) || th.wait != time.Minute {
		t.Fatalf("locked account: %v", err)
	}
	clk.Add(time.Minute)
	if a, err := s.authenticate(ctx, "ci", ciPass, "10.0.0.1"); err != nil || a.Name != "ci" {
		t.Fatalf("after the window: %v", err)
	}
	// Unknown accounts and robots fail the same way.
	for _, name := range []string{"nobody", "robot$nobody", "robot$Bad Name"} {
		if _, err := s.authenticate(ctx, name, "x", "10.0.0.2"); !errors.Is(err, errBadCredentials) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
