package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway/slipway/storage"
)

// A child process is the test binary re-run on the calling test, told by
// these variables which store to open and what to do.
const (
	envLocation = "SLIPWAY_STORAGETEST_LOCATION"
	envRole     = "SLIPWAY_STORAGETEST_ROLE" // "<race> <process index>"
	doneMarker  = "storagetest: child done"
	winMarker   = "storagetest: won"
)

const (
	procs          = 2
	procWorkers    = 8  // goroutines per process
	procIncrements = 10 // per goroutine
	procRounds     = 30 // PutIfAbsent rounds
)

// RunTwoProcess races two processes on one shared store: read-modify-write
// counter increments with PutIfMatch (no update may be lost) and
// PutIfAbsent on fresh keys (exactly one winner per key).
//
// It re-executes the test binary on the calling test, so call it from a
// top-level Test function that does nothing else. setup runs only in the
// parent, once per race, and returns a location (a directory, a bucket
// prefix…); open turns a location into a Store, in every process.
func RunTwoProcess(t *testing.T, setup func(t *testing.T) string, open func(t *testing.T, location string) storage.Store) {
	if loc, ok := os.LookupEnv(envLocation); ok {
		child(t, os.Getenv(envRole), open(t, loc))
		return
	}
	name := t.Name()
	t.Run("PutIfMatchCounter", func(t *testing.T) {
		loc := setup(t)
		runChildren(t, name, loc, "counter")
		want := procs * procWorkers * procIncrements
		if n, err := ReadCounter(t.Context(), open(t, loc), "counter"); err != nil || n != want {
			t.Fatalf("counter = %d, %v; want %d", n, err, want)
		}
	})
	t.Run("PutIfAbsentRace", func(t *testing.T) {
		loc := setup(t)
		out := runChildren(t, name, loc, "absent")
		winners := map[int]string{}
		for line := range strings.Lines(out) {
			var round int
			var token string
			if _, err := fmt.Sscanf(line, winMarker+" %d %s", &round, &token); err != nil {
				continue
			}
			if w, ok := winners[round]; ok {
				t.Fatalf("round %d: %s and %s both won", round, w, token)
			}
			winners[round] = token
		}
		s := open(t, loc)
		for round := range procRounds {
			w, ok := winners[round]
			if !ok {
				t.Fatalf("round %d: nobody won", round)
			}
			wantContent(t, s, fmt.Sprintf("absent/%d", round), w)
		}
	})
}

// runChildren runs the race in procs processes and returns their output.
func runChildren(t *testing.T, testName, loc, race string) string {
	var run []string
	for _, part := range strings.Split(testName, "/") {
		run = append(run, "^"+regexp.QuoteMeta(part)+"$")
	}
	outs := make([]bytes.Buffer, procs)
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run="+strings.Join(run, "/"), "-test.count=1")
		cmd.Env = append(os.Environ(), envLocation+"="+loc, fmt.Sprintf("%s=%s %d", envRole, race, i))
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting child: %v", err)
		}
		cmds[i] = cmd
	}
	var all strings.Builder
	for i, cmd := range cmds {
		err := cmd.Wait()
		out := outs[i].String()
		if err != nil || !strings.Contains(out, doneMarker) {
			t.Fatalf("child %d (%s): %v\n%s", i, race, err, out)
		}
		all.WriteString(out)
	}
	return all.String()
}

// child runs one process's side of a race.
func child(t *testing.T, role string, s storage.Store) {
	var race string
	var proc int
	if _, err := fmt.Sscanf(role, "%s %d", &race, &proc); err != nil {
		t.Fatalf("bad %s %q: %v", envRole, role, err)
	}
	barrier(t, s, race, proc)
	switch race {
	case "counter":
		if err := IncrementConcurrently(t.Context(), s, "counter", procWorkers, procIncrements); err != nil {
			t.Fatal(err)
		}
	case "absent":
		raceAbsent(t, s, proc)
	default:
		t.Fatalf("unknown race %q", race)
	}
	fmt.Println(doneMarker)
}

// raceAbsent has procWorkers goroutines PutIfAbsent each round's key and
// prints the wins, which the parent tallies across processes.
func raceAbsent(t *testing.T, s storage.Store, proc int) {
	var mu sync.Mutex // one whole line per win
	for round := range procRounds {
		var wg sync.WaitGroup
		for g := range procWorkers {
			wg.Go(func() {
				token := fmt.Sprintf("p%d-g%d", proc, g)
				_, err := s.PutIfAbsent(t.Context(), fmt.Sprintf("absent/%d", round), strings.NewReader(token), int64(len(token)))
				switch {
				case err == nil:
					mu.Lock()
					fmt.Printf("%s %d %s\n", winMarker, round, token)
					mu.Unlock()
				case !errors.Is(err, storage.ErrPreconditionFailed):
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		wg.Wait()
	}
}

// barrier announces this process and waits for the others, so that the
// races really overlap instead of running one process after the other.
func barrier(t *testing.T, s storage.Store, race string, proc int) {
	ctx := t.Context()
	key := func(i int) string { return fmt.Sprintf("barrier/%s/%d", race, i) }
	if _, err := s.Put(ctx, key(proc), strings.NewReader("here"), 4); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for i := range procs {
		for {
			_, err := s.Stat(ctx, key(i))
			if err == nil {
				break
			}
			if !errors.Is(err, storage.ErrNotFound) || time.Now().After(deadline) {
				t.Fatalf("waiting for process %d: %v", i, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
