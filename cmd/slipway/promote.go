package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/opencontainers/go-digest"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/promote"
)

// client builds the API client from SLIPWAY_URL, SLIPWAY_USER and
// SLIPWAY_PASSWORD (a robot logs in as "robot$name" with its secret), or
// SLIPWAY_ID_TOKEN: a CI job's OIDC ID token, used instead of user and
// password when set.
func client(env config.LookupEnv) *promote.Client {
	get := func(k string) string { v, _ := env(k); return v }
	// A token read from a file or a command often ends with a newline.
	return &promote.Client{BaseURL: get("SLIPWAY_URL"), User: get("SLIPWAY_USER"), Password: get("SLIPWAY_PASSWORD"),
		IDToken: strings.TrimSpace(get("SLIPWAY_ID_TOKEN"))}
}

// interleaved lets flags follow positional arguments, as users type them
// ("slipway promote staging/app:1 --to production").
func interleaved(fl *flag.FlagSet, args []string) (positional []string, code int, ok bool) {
	for {
		if code, ok := parseFlags(fl, args); !ok {
			return nil, code, false
		}
		if fl.NArg() == 0 {
			return positional, 0, true
		}
		positional = append(positional, fl.Arg(0))
		args = fl.Args()[1:]
	}
}

// cliFail prints a refusal or failure and returns the exit code: 1.
func cliFail(stderr io.Writer, cmd string, err error) int {
	var pe *promote.Error
	switch {
	case errors.As(err, &pe) && len(pe.Failures) > 0:
		// One line per failing gate: a release can fail several images.
		fmt.Fprintf(stderr, "slipway %s: refused (%d %s): %d gate failure(s), nothing was promoted:\n", cmd, pe.Status, pe.Code, len(pe.Failures))
		for _, f := range pe.Failures {
			fmt.Fprintf(stderr, "  %s [%s]: %s\n", f.Source, f.Gate, f.Message)
		}
	case pe != nil:
		fmt.Fprintf(stderr, "slipway %s: refused (%d %s): %s\n", cmd, pe.Status, pe.Code, pe.Message)
	default:
		fmt.Fprintf(stderr, "slipway %s: %s\n", cmd, err)
	}
	return 1
}

func promoteCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("promote", "SOURCE --to STAGE [--tag TAG] [--expect-digest D] [--expect-previous D|none] [--reason TEXT] [--json]", stderr)
	to := fl.String("to", "", "target `stage` (required)")
	tag := fl.String("tag", "", "tag in the target repository (default: the source's tag)")
	expect := fl.String("expect-digest", "", "refuse unless the source resolves to this `digest`")
	prev := fl.String("expect-previous", "", "refuse unless the target tag names this `digest` now (\"none\": must not exist)")
	reason := fl.String("reason", "", "why, for the ledger")
	asJSON := fl.Bool("json", false, "print the record as JSON")
	pos, code, ok := interleaved(fl, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || *to == "" {
		fl.Usage()
		return 2
	}
	rec, created, err := client(env).Promote(ctx, promote.Request{
		Source: pos[0], To: *to, Tag: *tag, ExpectDigest: digest.Digest(*expect), ExpectPrevious: *prev, Reason: *reason,
	})
	if err != nil {
		return cliFail(stderr, "promote", err)
	}
	if *asJSON {
		return printJSON(stdout, rec)
	}
	verb := "promoted"
	if !created {
		verb = "already there (no-op)"
	}
	fmt.Fprintf(stdout, "%s: %s -> %s\n", verb, rec.Source, rec.Target)
	printRecord(stdout, rec)
	return 0
}

func printRecord(w io.Writer, rec promote.Record) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  id\t%s\n  digest\t%s\n  previous\t%s\n  outcome\t%s\n  actor\t%s\n  at\t%s\n",
		rec.ID, rec.Digest, orDash(rec.PreviousDigest.String()), rec.Outcome, rec.Actor, rec.At.Format("2006-01-02 15:04:05Z07:00"))
	if rec.Reason != "" {
		fmt.Fprintf(tw, "  reason\t%s\n", rec.Reason)
	}
	if rec.RollbackOf != "" {
		fmt.Fprintf(tw, "  rollback of\t%s\n", rec.RollbackOf)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
	return 0
}

func historyCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("history", "[APP|REPOSITORY] [--tag TAG] [--stage STAGE] [--limit N] [--json]", stderr)
	tag := fl.String("tag", "", "only this target tag")
	stage := fl.String("stage", "", "only promotions into this stage")
	limit := fl.Int("limit", 20, "at most this many records")
	asJSON := fl.Bool("json", false, "print the page as JSON")
	pos, code, ok := interleaved(fl, args)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		fl.Usage()
		return 2
	}
	q := promote.Query{Tag: *tag, Stage: *stage, Limit: *limit}
	if len(pos) == 1 {
		q.Repository = pos[0]
	}
	page, err := client(env).History(ctx, q)
	if err != nil {
		return cliFail(stderr, "history", err)
	}
	if *asJSON {
		return printJSON(stdout, page)
	}
	if len(page.Records) == 0 {
		fmt.Fprintln(stdout, "no promotions")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tTARGET\tDIGEST\tPREVIOUS\tOUTCOME\tACTOR\tID")
	for _, r := range page.Records {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.At.Format("2006-01-02 15:04:05"), r.Target, short(r.Digest),
			orDash(short(r.PreviousDigest)), r.Outcome, r.Actor, r.ID)
	}
	tw.Flush()
	return 0
}

func short(d digest.Digest) string {
	if d == "" {
		return ""
	}
	if e := d.Encoded(); len(e) > 12 {
		return string(d.Algorithm()) + ":" + e[:12]
	}
	return d.String()
}

func rollbackCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("rollback", "PROMOTION-ID [--reason TEXT] [--json]", stderr)
	reason := fl.String("reason", "", "why, for the ledger")
	asJSON := fl.Bool("json", false, "print the record as JSON")
	pos, code, ok := interleaved(fl, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" {
		fl.Usage()
		return 2
	}
	rec, err := client(env).Rollback(ctx, pos[0], *reason)
	if err != nil {
		return cliFail(stderr, "rollback", err)
	}
	if *asJSON {
		return printJSON(stdout, rec)
	}
	fmt.Fprintf(stdout, "rolled back: %s -> %s\n", rec.Target, rec.Digest)
	printRecord(stdout, rec)
	return 0
}
