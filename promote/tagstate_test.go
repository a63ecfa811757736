package promote

import (
	"context"
	"io"
	"testing"

	"github.com/slipway/slipway/registry"
	"github.com/slipway/slipway/storage"
)

func TestSeqOf(t *testing.T) {
	for _, tc := range []struct {
		stamp string
		seq   int64
		fail  bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"7", 7, false},
		{"x", 0, true},
		{"-1", 0, true},
	} {
		seq, err := seqOf(registry.TagState{Stamp: tc.stamp})
		if (err != nil) != tc.fail || seq != tc.seq {
			t.Errorf("seqOf(%q) = %d %v", tc.stamp, seq, err)
		}
	}
}

// A promotion writes its tag as "<digest>\n<seq>\n", the format buckets
// already hold, and reads it back with its Seq; a pushed tag is Seq 0.
func TestTagFormat(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.pushImage("staging/app:a", 512, 1)
	e.pushImage("staging/app:b", 512, 1)
	e.promote(Request{Source: "staging/app:a", To: "production", Tag: "stable"})
	second, _ := e.promote(Request{Source: "staging/app:b", To: "production", Tag: "stable"})
	rc, _, err := e.store.Get(ctx, "repositories/production/app/_tags/stable", storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if want := second.Digest.String() + "\n2\n"; string(raw) != want {
		t.Fatalf("tag object = %q, want %q", raw, want)
	}
	st, ok, err := e.svc.tagState(ctx, "production/app", "stable")
	if err != nil || !ok || st.Digest != second.Digest || st.Seq != 2 {
		t.Fatalf("tagState = %+v %v %v, want %s at seq 2", st, ok, err, second.Digest)
	}
	pushed, ok, err := e.svc.tagState(ctx, "staging/app", "a")
	if err != nil || !ok || pushed.Seq != 0 || pushed.Stamp != "" {
		t.Fatalf("pushed tag state = %+v %v %v", pushed, ok, err)
	}
}
