#!/usr/bin/env bash
# bench/run-gc.sh — garbage collection (issue 12): Slipway's online
# collector (`slipway gc`, the server keeps serving) vs the stock
# distribution registry v3.1.2's offline `registry garbage-collect
# --delete-untagged` (the registry stopped), on one local MinIO, one bucket
# each. See BENCHMARKS.md ("Garbage collection").
#
# One MinIO (/root/go/bin/minio or $MINIO_BIN) with its data dir under
# BENCH_DIR (a real disk, not tmpfs); buckets slipway and stock. Slipway
# (storage.s3 like run-s3.sh, token auth, gc.enabled false: only the
# one-off runs below collect) and stock (storage.s3 like run-s3.sh, plus
# storage.delete.enabled true) talk to MinIO directly; the collectors talk
# to it through bench/s3count (a counting reverse proxy), so the requests
# counted are the collector's alone.
#
# Phase "collect", for each system of SYSTEMS:
#   1. populate (regbench -scenario gc-populate, untimed for the rows):
#      REPOS repositories × 5 tags × 3 layers (2–8 KiB random, layer 0
#      shared by the repository's tags, own config per tag; the same bytes
#      on both systems), WORKERS repositories at a time; then half the tags
#      deleted through the API: DELETE /v2/<repo>/manifests/<tag>
#      (distribution untags, registry/handlers/manifests.go DeleteManifest);
#   2. the bucket listed with minio-go (regbench -scenario gc-bucket):
#      objects and bytes by class (blob data, manifests, descriptors,
#      repository links/tags, gc bookkeeping);
#   3. sync, drop_caches, sleep SLEEP, wait for a quiet machine; then ONE
#      timed collection under /usr/bin/time (wall, CPU, peak RSS):
#        stock    stopped, then `registry garbage-collect --delete-untagged`
#        slipway  `slipway gc --config` with gc.grace 0s, server running
#      and the S3 requests the s3count proxy saw during it. With
#      LINK_WAIT=N > 0 a second Slipway run follows N s later (the bucket
#      listed in between; the summary sums the two runs), for a collector
#      set to hold blobs whose last link it removed (gc Options.LinkTTL);
#   4. the bucket listed again; then regbench -scenario gc-verify (stock
#      restarted first): every kept tag pulls (manifest digest, config and
#      layers present), every deleted tag is 404; what the collector left
#      of the deleted images is counted.
# Phase "push" (Slipway): PUSH_REPS rounds, alternating order, of
# regbench -scenario gc-push (PUSH_WORKERS clients pushing 4 KiB images to
# fresh repositories for DURATION), each on a freshly started server:
#   without  no collection;
#   cli      `slipway gc` running in a loop (gc.grace LOOP_GRACE: a push's
#            blob links are younger than that, so the loop cannot fail a
#            push by design; it still reads every repository) from 1 s
#            before the pushes to their end, at gc.concurrency (it sees
#            no client);
#   gentle   the same loop of `slipway gc --gentle` (gc.busy_concurrency
#            requests in flight, each busy gc.busy_share of the time);
#   server   the server's own scheduled collections back to back
#            (gc.enabled, interval 1s, grace LOOP_GRACE, lease 3s), which
#            keep gc.busy_concurrency requests in flight while the server
#            has clients; runs counted from its /metrics.
# PUSH_GC names the collected modes run beside "without".
#
# Knobs: REPOS=2000 WORKERS=16 PUSH_WORKERS=8 DURATION=60s PUSH_REPS=1
#   LOOP_GRACE=1h LINK_WAIT=0 SYSTEMS="slipway stock" PHASES="collect push" PUSH_GC="cli gentle server" SLEEP=10
#   DROP=1 GOBENCH=1 (run the gc package's Benchmark* for the 1 M-object
#   memory figure, if there is one) SEED=1
#   QUIET_PCT=10 QUIET_MAX=20 SLIPWAY_BIN STOCK_BIN MINIO_BIN KEEP=0 RESULTS
#   BY_KEY=0 (1: each collection's S3 requests by method and key class, in
#   RESULTS with .<system>-<n>.bykey.json for .jsonl)
#   BASE_PORT=5600 (Slipway +1, stock +3, MinIO +50/+51, proxy +61/+71)
# Smoke test (~3 min): REPOS=20 DURATION=5s SLEEP=0 DROP=0 GOBENCH=0 bench/run-gc.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPOS=${REPOS:-2000}
WORKERS=${WORKERS:-16}
PUSH_WORKERS=${PUSH_WORKERS:-8}
DURATION=${DURATION:-60s}
PUSH_REPS=${PUSH_REPS:-1}
LOOP_GRACE=${LOOP_GRACE:-1h}
LINK_WAIT=${LINK_WAIT:-0}
SYSTEMS=${SYSTEMS:-slipway stock}
PHASES=${PHASES:-collect push}
PUSH_GC=${PUSH_GC:-cli gentle server}
SLEEP=${SLEEP:-10}
DROP=${DROP:-1}
GOBENCH=${GOBENCH:-1}
SEED=${SEED:-1}
BY_KEY=${BY_KEY:-0}
QUIET_MAX=${QUIET_MAX:-20}
BASE_PORT=${BASE_PORT:-5600}
STOCK_VERSION=v3.1.2
RESULTS=${RESULTS:-$REPO/bench/results/gc-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
COMMAND="REPOS=$REPOS WORKERS=$WORKERS PUSH_WORKERS=$PUSH_WORKERS DURATION=$DURATION PUSH_REPS=$PUSH_REPS LOOP_GRACE=$LOOP_GRACE LINK_WAIT=$LINK_WAIT SYSTEMS='$SYSTEMS' PHASES='$PHASES' PUSH_GC='$PUSH_GC' SLEEP=$SLEEP DROP=$DROP bench/run-gc.sh"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_numbers LINK_WAIT REPOS WORKERS PUSH_WORKERS PUSH_REPS SLEEP SEED BASE_PORT
for sys in $SYSTEMS; do [[ $sys == slipway || $sys == stock ]] || die "unknown system $sys (SYSTEMS: slipway stock)"; done
for m in $PUSH_GC; do [[ $m == cli || $m == gentle || $m == server ]] || die "unknown PUSH_GC mode $m (cli gentle server)"; done
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed for the collectors' wall time, CPU and peak RSS"
command -v jq >/dev/null || die "jq is needed"
command -v python3 >/dev/null || die "python3 is needed for the summary"

start_run gcrun

# --- build ------------------------------------------------------------------------
SLIPWAY_GIVEN=${SLIPWAY_BIN:-}
build_bench s3count
if [[ " $SYSTEMS " == *" slipway "* ]] && ! "$SLIPWAY_BIN" gc --help >/dev/null 2>&1; then
	log "WARNING: '$SLIPWAY_BIN gc --help' fails: this build may have no gc command"
fi
STOCK_BIN=${STOCK_BIN:-$(go env GOPATH)/bin/registry}
if [[ ! -x $STOCK_BIN ]]; then
	go install "github.com/distribution/distribution/v3/cmd/registry@$STOCK_VERSION"
	STOCK_BIN=$(go env GOPATH)/bin/registry
fi
[[ -x $MINIO_BIN ]] || die "no MinIO at $MINIO_BIN"

bench_credentials
start_minio
"$RB" -scenario raw-push-16m -phase setup -state "$RUN_DIR/mkbucket" -s3-endpoint "$MINIO_EP" -s3-bucket stock 2>>"$CLIENT_LOG" >/dev/null ||
	die "cannot create bucket stock"

# the collectors' S3 endpoint: a counting proxy in front of MinIO
start_s3count

# --- configurations ------------------------------------------------------------------
# slipway_yaml PORT S3ENDPOINT [GRACE]
slipway_yaml() {
	slipway_s3_yaml "$1" "$2" true
	# the collectors' configurations only (the server's default: gc off)
	[[ -z ${3:-} ]] || printf 'gc:\n  enabled: false\n  grace: %s\n' "$3"
}
# stock_yaml PORT S3ENDPOINT
stock_yaml() {
	stock_config "$1" "$(stock_s3_storage "$2" stock)
  delete:
    enabled: true"
}
declare -A PORT=([slipway]=$((BASE_PORT + 1)) [stock]=$((BASE_PORT + 3)))
slipway_yaml "${PORT[slipway]}" "$MINIO_EP" >"$RUN_DIR/slipway.yml"
slipway_yaml "${PORT[slipway]}" "$PROXY_EP" 0s >"$RUN_DIR/slipway-gc.yml"
slipway_yaml "${PORT[slipway]}" "$MINIO_EP" "$LOOP_GRACE" >"$RUN_DIR/slipway-gc-loop.yml"
{
	slipway_s3_yaml "${PORT[slipway]}" "$MINIO_EP" true
	printf 'gc:\n  enabled: true\n  interval: 1s\n  lease: 3s\n  grace: %s\n' "$LOOP_GRACE"
} >"$RUN_DIR/slipway-gc-server.yml"
stock_yaml "${PORT[stock]}" "$MINIO_EP" >"$RUN_DIR/stock.yml"
stock_yaml "${PORT[stock]}" "$PROXY_EP" >"$RUN_DIR/stock-gc.yml"

# Slipway and stock read no environment overrides of ours.
UNSET_ENV=()
for v in $(compgen -e); do [[ $v == SLIPWAY_* || $v == AWS_* || $v == REGISTRY_* ]] && UNSET_ENV+=(-u "$v"); done
# start NAME [CONFIG]: Slipway's CONFIG defaults to slipway.yml.
start() {
	local name=$1 port=${PORT[$1]}
	port_free "$port" || die "port $port in use (set BASE_PORT)"
	case $name in
	slipway) env "${UNSET_ENV[@]}" "$SLIPWAY_BIN" serve --config "${2:-$RUN_DIR/slipway.yml}" >>"$RUN_DIR/slipway.log" 2>&1 & ;;
	stock) env "${UNSET_ENV[@]}" OTEL_TRACES_EXPORTER=none "$STOCK_BIN" serve "$RUN_DIR/stock.yml" >>"$RUN_DIR/stock.log" 2>&1 & ;;
	esac
	started "$name" "$port" 200 401
	log "$name at ${URL[$name]} (pid ${PID[$name]})"
}

# --- machine facts ------------------------------------------------------------------------
machine() {
	echo "- Command: \`$COMMAND\`"
	echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- $(cpu_facts)"
	s3_facts
}
machine | sed 's/^/# /' >>"$RESULTS"

BG=0
failures=0
# rb LABEL ARGS...: one regbench run, its line appended to RESULTS; 1 on failure.
rb() {
	local label=$1 out rc=0
	shift
	LAST=
	out=$(timeout 7200 "$RB" -label "$label" -bg-busy-pct "$BG" "$@" 2>>"$CLIENT_LOG") || rc=$?
	printf '%s\n' "$out" >>"$RESULTS"
	if ((rc != 0)); then
		failures=$((failures + 1))
		log "$label $*: FAILED: $(tail -1 "$CLIENT_LOG")"
		return 1
	fi
	LAST=$out
}
bucket() { # SYSTEM WHEN
	rb "$1:$2" -scenario gc-bucket -s3-endpoint "$MINIO_EP" -s3-bucket "$1" -state "$RUN_DIR/state-$1" &&
		log "$1 bucket $2: $(jq -r '"\(.ops) objects, \(.value) bytes"' <<<"$LAST")"
}

# collect SYSTEM N: timed collection N of SYSTEM through the proxy; a
# gc-collect line (rep N).
collect() {
	local sys=$1 n=$2 rc=0 cmd tf=$RUN_DIR/time-$1-$2 out=$RUN_DIR/$1-gc-$2.log take=$RUN_DIR/take-$1-$2.json
	case $sys in
	stock) cmd=("$STOCK_BIN" garbage-collect --delete-untagged "$RUN_DIR/stock-gc.yml") ;;
	slipway) cmd=("$SLIPWAY_BIN" gc --config "$RUN_DIR/slipway-gc.yml") ;;
	esac
	prep
	curl -sS "http://$PROXY_CTL/take" >/dev/null
	env "${UNSET_ENV[@]}" OTEL_TRACES_EXPORTER=none /usr/bin/time -f '%e %U %S %M' -o "$tf" "${cmd[@]}" >"$out" 2>&1 || rc=$?
	curl -sS "http://$PROXY_CTL/take" >"$take.full"
	jq -c '{total, counts}' "$take.full" >"$take"
	# BY_KEY=1: the requests by method and key class (the key's first two
	# path elements, digests cut), kept beside the run as .bykey.json.
	if [[ $BY_KEY == 1 ]]; then
		jq -c '[.requests[] | "\(.method) \(.kind) \(.path | split("/") | .[2:4] | map(select(test("^[0-9a-f]{16,}$") | not)) | join("/"))"]
			| group_by(.) | map({key: .[0], value: length}) | sort_by(-.value) | from_entries' "$take.full" >"${RESULTS%.jsonl}.$sys-$n.bykey.json"
	fi
	rm -f "$take.full"
	read -r wall user sys_s rss < <(tail -1 "$tf")
	jq -cn --arg sys "$sys" --argjson n "$n" --argjson rc "$rc" --argjson wall "$wall" --argjson user "$user" --argjson syst "$sys_s" \
		--argjson rss "$rss" --argjson bg "$BG" --slurpfile s3 "$take" --arg cmd "${cmd[*]##*/}" \
		--arg tail "$(tail -3 "$out")" '{registry: $sys, scenario: "gc-collect", rep: $n, metric: "s", value: $wall,
		seconds: $wall, background_busy_pct: $bg, time: (now | todate),
		extra: {s3: $s3[0], user_s: $user, sys_s: $syst, peak_rss_kib: $rss, exit: $rc, command: $cmd, output_tail: $tail}}
		+ (if $rc != 0 then {error: ("exit " + ($rc | tostring))} else {} end)' >>"$RESULTS"
	if ((rc != 0)); then
		failures=$((failures + 1))
		log "$sys collection $n FAILED (exit $rc): $(tail -3 "$out")"
		return 1
	fi
	log "$sys collection $n: ${wall}s wall, $(jq .total "$take") S3 requests, peak RSS $((rss / 1024)) MiB (bg ${BG}%)"
}

# --- phase: collect --------------------------------------------------------------------------
if [[ " $PHASES " == *" collect "* ]]; then
	for sys in $SYSTEMS; do
		start "$sys"
		rb "$sys" -url "${URL[$sys]}" -scenario gc-populate -n "$REPOS" -workers "$WORKERS" -seed "$SEED" -state "$RUN_DIR/state-$sys" ||
			{
				stop "$sys"
				continue
			}
		log "$sys populated: $(jq -r '"\(.ops) images at \(.value | floor) images/s, \(.extra.tags_deleted) tags deleted in \(.extra.delete_seconds | floor) s"' <<<"$LAST")"
		bucket "$sys" before || true
		[[ $sys == stock ]] && stop stock # offline: the stock collector needs the registry stopped
		if collect "$sys" 1 && [[ $sys == slipway ]] && ((LINK_WAIT > 0)); then
			# a descriptor whose last link run 1 removed waits BlobLinkTTL
			# (5 min) after that removal: run 2 frees it and its data
			bucket slipway between || true
			log "waiting ${LINK_WAIT}s (BlobLinkTTL) before Slipway's second run"
			sleep "$LINK_WAIT"
			collect slipway 2 || true
		fi
		bucket "$sys" after || true
		[[ $sys == stock ]] && start stock # a fresh process: no cached descriptors of what went
		rb "$sys" -url "${URL[$sys]}" -scenario gc-verify -workers "$WORKERS" -state "$RUN_DIR/state-$sys" &&
			log "$sys verified: $(jq -c .extra <<<"$LAST")"
		[[ $sys == stock ]] && stop stock
	done
fi

# --- phase: push ------------------------------------------------------------------------------
if [[ " $PHASES " == *" push "* && " $SYSTEMS " == *" slipway "* ]]; then
	[[ -n ${PID[slipway]:-} ]] || start slipway
	# gc_loop [FLAG...]: runs slipway gc until RUN_DIR/stop-gc exists; counts
	# the runs that completed and failed. The run under way when the pushes
	# end is interrupted (stop_gc_loop: a --gentle run could take an hour),
	# and counts as neither.
	gc_loop() {
		local ok=0 bad=0 pid
		while [[ ! -e $RUN_DIR/stop-gc ]]; do
			env "${UNSET_ENV[@]}" "$SLIPWAY_BIN" gc "$@" --config "$RUN_DIR/slipway-gc-loop.yml" >>"$RUN_DIR/slipway-gc-loop.log" 2>&1 &
			pid=$!
			echo "$pid" >"$RUN_DIR/gc-loop-pid"
			if wait "$pid"; then
				ok=$((ok + 1))
			elif [[ ! -e $RUN_DIR/stop-gc ]]; then
				bad=$((bad + 1))
				sleep 1 # counted as a failure; no busy loop of failing runs
			fi
		done
		echo "$ok $bad" >"$RUN_DIR/gc-loop-runs"
	}
	stop_gc_loop() {
		touch "$RUN_DIR/stop-gc"
		kill -INT "$(cat "$RUN_DIR/gc-loop-pid" 2>/dev/null)" 2>/dev/null || true
		wait "${PID[gc-loop]}" || true
		unset "PID[gc-loop]"
	}
	# gc_runs OUTCOME: the server's slipway_gc_runs_total{outcome=OUTCOME}.
	gc_runs() {
		curl -fsS "${URL[slipway]}/metrics" | awk -v o="$1" '$1 == "slipway_gc_runs_total{outcome=\"" o "\"}" {print $2 + 0; f = 1} END {if (!f) print 0}'
	}
	for ((rep = 1; rep <= PUSH_REPS; rep++)); do
		# shellcheck disable=SC2086 # PUSH_GC is a list of modes
		alternate_order "$rep" 0 without $PUSH_GC
		for mode in "${ORDER[@]}"; do
			stop slipway
			cfg=$RUN_DIR/slipway.yml
			[[ $mode != server ]] || cfg=$RUN_DIR/slipway-gc-server.yml
			start slipway "$cfg"
			prep
			case $mode in
			cli | gentle)
				rm -f "$RUN_DIR/stop-gc" "$RUN_DIR/gc-loop-runs" "$RUN_DIR/gc-loop-pid"
				flags=() label=slipway+gc
				[[ $mode == cli ]] || flags=(--gentle) label=slipway+gentlegc
				gc_loop "${flags[@]}" &
				PID[gc-loop]=$!
				sleep 1
				rb "$label" -url "${URL[slipway]}" -scenario gc-push -workers "$PUSH_WORKERS" -duration "$DURATION" -rep "$rep" \
					-server-pid "${PID[slipway]}" -also-pids "${PID[minio]}" || true
				stop_gc_loop
				read -r ok bad <"$RUN_DIR/gc-loop-runs"
				;;
			server)
				ok0=$(gc_runs success) bad0=$(gc_runs error)
				rb slipway+servergc -url "${URL[slipway]}" -scenario gc-push -workers "$PUSH_WORKERS" -duration "$DURATION" -rep "$rep" \
					-server-pid "${PID[slipway]}" -also-pids "${PID[minio]}" || true
				ok=$(($(gc_runs success) - ok0)) bad=$(($(gc_runs error) - bad0))
				;;
			without)
				rb slipway -url "${URL[slipway]}" -scenario gc-push -workers "$PUSH_WORKERS" -duration "$DURATION" -rep "$rep" \
					-server-pid "${PID[slipway]}" -also-pids "${PID[minio]}" &&
					log "pushes without gc (rep $rep): $(jq -r .value <<<"$LAST") images/s"
				continue
				;;
			esac
			# the collections' runs, as a line of their own beside the push line
			[[ $mode != server ]] || label=slipway+servergc
			jq -cn --arg reg "$label" --argjson ok "$ok" --argjson bad "$bad" --argjson rep "$rep" \
				'{registry: $reg, scenario: "gc-loop", metric: "runs", value: $ok, rep: $rep, extra: {completed: $ok, failed: $bad}, time: (now | todate)}' >>"$RESULTS"
			((bad == 0)) || {
				failures=$((failures + 1))
				log "gc ($mode): $bad runs failed: $(tail -n 3 "$RUN_DIR/slipway-gc-loop.log" "$RUN_DIR/slipway.log")"
			}
			log "pushes with gc $mode (rep $rep): $(jq -r '.value' <<<"${LAST:-null}") images/s, $ok gc runs completed ($bad failed)"
		done
	done
	stop slipway
fi

# --- the gc package's synthetic memory benchmark (h-collect), if any -----------------------------
GOBENCH_OUT=$RUN_DIR/gobench.txt
: >"$GOBENCH_OUT"
if [[ $GOBENCH == 1 ]] && grep -qs '^func Benchmark' "$REPO"/gc/*_test.go; then
	log "go test -bench in ./gc (the 1 M-object memory figure)"
	(cd "$REPO" && go test -run '^$' -bench . -benchtime 1x -benchmem -count 1 ./gc/) >"$GOBENCH_OUT" 2>&1 || {
		failures=$((failures + 1))
		log "gc Go benchmark FAILED: $(tail -3 "$GOBENCH_OUT")"
	}
fi

{
	echo "### Garbage collection: Slipway online vs stock distribution $STOCK_VERSION offline"
	echo
	machine
	echo
	python3 "$REPO/bench/gcsummary.py" "$RESULTS"
	echo
	if grep -qs '^func Benchmark' "$REPO"/gc/*_test.go; then
		echo "Collector memory on a synthetic listing (package gc; \`go test -run '^\$' -bench . -benchtime 1x -benchmem ./gc/\`):"
		echo
		if [[ -s $GOBENCH_OUT ]]; then
			echo '```'
			grep -E '^(Benchmark|goos|goarch|cpu|PASS|FAIL|ok)' "$GOBENCH_OUT"
			echo '```'
			# BenchmarkCollect1M reports "<MB> peak-heap-MB" and "<n> objects"
			awk '/peak-heap-MB/ { for (i = 2; i <= NF; i++) { if ($i == "peak-heap-MB") mb = $(i-1); if ($i == "objects") n = $(i-1) } }
				END { if (mb != "") printf "\nPeak Go heap of one collection of %d objects: **%.1f MB** (target ≤ 100 MB: %s).\n", n, mb, (mb <= 100 ? "yes" : "**NO**") }' "$GOBENCH_OUT"
		else
			echo "(not run: GOBENCH=0)"
		fi
	else
		echo "Collector memory on a synthetic listing: no Benchmark in gc/*_test.go in this tree."
	fi
} | tee "${RESULTS%.jsonl}.md"
log "raw results: $RESULTS"
((failures == 0)) || exit 1
