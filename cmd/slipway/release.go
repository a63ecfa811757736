package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/slipway/slipway/config"
	"github.com/slipway/slipway/promote"
)

const releaseUsage = `Usage:
  slipway release create --to STAGE [--reason TEXT] [--json] SOURCE[=TAG]...
        promote every SOURCE (staging/api:1.4 or staging/api@sha256:…) into
        STAGE together: all of them or, if any is refused, none. =TAG names
        a different tag in the target (staging/api:1.4=stable); a digest
        source needs one.
  slipway release show ID [--json]
        the release and its member records (a release whose writer died is
        finished first: what it shows is complete)
  slipway release list [--limit N] [--cursor C] [--json]
        releases, newest first
  slipway release rollback ID [--reason TEXT] [--json]
        every member back to what its tag named before, as one new release
`

func releaseCmd(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, releaseUsage)
		return 2
	}
	switch args[0] {
	case "create":
		return releaseCreate(ctx, args[1:], stdout, stderr, env)
	case "show":
		return releaseShow(ctx, args[1:], stdout, stderr, env)
	case "list":
		return releaseList(ctx, args[1:], stdout, stderr, env)
	case "rollback":
		return releaseRollback(ctx, args[1:], stdout, stderr, env)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, releaseUsage)
		return 0
	}
	fmt.Fprintf(stderr, "slipway release: unknown command %q\n%s", args[0], releaseUsage)
	return 2
}

func releaseCreate(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("release create", "--to STAGE [--reason TEXT] [--json] SOURCE[=TAG]...", stderr)
	to := fl.String("to", "", "target `stage` (required)")
	reason := fl.String("reason", "", "why, for the ledger")
	asJSON := fl.Bool("json", false, "print the release as JSON")
	pos, code, ok := interleaved(fl, args)
	if !ok {
		return code
	}
	if len(pos) == 0 || *to == "" {
		fl.Usage()
		return 2
	}
	req := promote.ReleaseRequest{To: *to, Reason: *reason}
	for _, a := range pos {
		src, tag, _ := strings.Cut(a, "=")
		req.Images = append(req.Images, promote.ReleaseImage{Source: src, Tag: tag})
	}
	rel, err := client(env).CreateRelease(ctx, req)
	if err != nil {
		return cliFail(stderr, "release create", err)
	}
	if *asJSON {
		return printJSON(stdout, rel)
	}
	fmt.Fprintf(stdout, "released %d image(s) into %s\n", len(rel.Members), rel.Stage)
	printRelease(stdout, rel)
	return 0
}

func releaseShow(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("release show", "ID [--json]", stderr)
	asJSON := fl.Bool("json", false, "print the release as JSON")
	pos, code, ok := interleaved(fl, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fl.Usage()
		return 2
	}
	rel, err := client(env).GetRelease(ctx, pos[0])
	if err != nil {
		return cliFail(stderr, "release show", err)
	}
	if *asJSON {
		return printJSON(stdout, rel)
	}
	printRelease(stdout, rel)
	return 0
}

func releaseList(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("release list", "[--limit N] [--cursor C] [--json]", stderr)
	limit := fl.Int("limit", 20, "at most this many releases")
	cursor := fl.String("cursor", "", "continue after this release id (the previous page's next_cursor)")
	asJSON := fl.Bool("json", false, "print the page as JSON")
	pos, code, ok := interleaved(fl, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fl.Usage()
		return 2
	}
	page, err := client(env).Releases(ctx, *limit, *cursor)
	if err != nil {
		return cliFail(stderr, "release list", err)
	}
	if *asJSON {
		return printJSON(stdout, page)
	}
	if len(page.Releases) == 0 {
		fmt.Fprintln(stdout, "no releases")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tSTAGE\tSTATE\tIMAGES\tACTOR\tID")
	for _, r := range page.Releases {
		state := r.State
		if r.RollbackOf != "" {
			state += " (rollback of " + r.RollbackOf + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.At.Format("2006-01-02 15:04:05"), r.Stage, state, len(r.Members), r.Actor, r.ID)
	}
	tw.Flush()
	if page.NextCursor != "" {
		fmt.Fprintf(stdout, "more: --cursor %s\n", page.NextCursor)
	}
	return 0
}

func releaseRollback(ctx context.Context, args []string, stdout, stderr io.Writer, env config.LookupEnv) int {
	fl := newFlags("release rollback", "ID [--reason TEXT] [--json]", stderr)
	reason := fl.String("reason", "", "why, for the ledger")
	asJSON := fl.Bool("json", false, "print the new release as JSON")
	pos, code, ok := interleaved(fl, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" {
		fl.Usage()
		return 2
	}
	rel, err := client(env).RollbackRelease(ctx, pos[0], *reason)
	if err != nil {
		return cliFail(stderr, "release rollback", err)
	}
	if *asJSON {
		return printJSON(stdout, rel)
	}
	fmt.Fprintf(stdout, "rolled back release %s (%d image(s))\n", pos[0], len(rel.Members))
	printRelease(stdout, rel)
	return 0
}

// printRelease prints a release and one line per member.
func printRelease(w io.Writer, r promote.Release) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  id\t%s\n  stage\t%s\n  state\t%s\n  actor\t%s\n  at\t%s\n", r.ID, r.Stage, r.State, r.Actor, r.At.Format("2006-01-02 15:04:05Z07:00"))
	if r.Reason != "" {
		fmt.Fprintf(tw, "  reason\t%s\n", r.Reason)
	}
	if r.RollbackOf != "" {
		fmt.Fprintf(tw, "  rollback of\t%s\n", r.RollbackOf)
	}
	if r.Error != "" {
		fmt.Fprintf(tw, "  error\t%s\n", r.Error)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TARGET\tDIGEST\tPREVIOUS\tOUTCOME\tSOURCE\tRECORD")
	for _, m := range r.Members {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", m.Target, short(m.Digest), orDash(short(m.PreviousDigest)), m.Outcome, m.Source, m.ID)
	}
	tw.Flush()
}
