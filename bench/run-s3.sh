#!/usr/bin/env bash
# bench/run-s3.sh — Slipway vs the stock distribution registry v3.1.2, both
# on S3 (one local MinIO), with raw minio-go PutObject/GetObject as the
# limit. See BENCHMARKS.md ("On S3").
#
# One MinIO (/root/go/bin/minio or $MINIO_BIN) with its data dir under
# BENCH_DIR (a real disk, not tmpfs); a bucket per system: raw, slipway,
# stock, floor. Registry instances, all on loopback, talking to MinIO directly:
#   slipway          storage.s3 redirect: true   (push, pull, manifest rows)
#   slipway-noredir  storage.s3 redirect: false  (pull rows), same bucket
#   stock            storage.redirect.disable: false  (push, pull, manifest rows)
#   stock-noredir    storage.redirect.disable: true   (pull rows), same bucket
#   floor            bench/floor (push rows): only the irreducible work of a
#                    push: hash the chunked PATCH body while holding it in a
#                    pooled buffer, one UNSIGNED-PAYLOAD PutObject, digest
#                    check at PUT, state in memory; no auth. The best any
#                    registry that hashes and holds the body could do here.
#   floor-nohash     the same with -hash=false (what the SHA-256 costs)
# Slipway has token auth on (an admin user for this run, like run.sh).
#
# Phase "count" (first; ~1 min): for each of the four configurations, a
# fresh registry instance talks to MinIO through bench/s3count (a counting
# reverse proxy) and regbench -scenario s3-ops pushes one 16 MiB blob
# docker-style, pulls it (twice), pushes config + manifest, GETs the
# manifest by tag (once, then 10 more) and HEADs it 10 times; the S3
# requests of each step are recorded (a presigned GET sent by the client
# after a redirect passes through the proxy too and is counted).
#
# Phase "rows": for each row, REPS repetitions, the systems in alternating
# order; before each timed run: sync, drop_caches, sleep SLEEP, wait for a
# quiet machine (like run.sh). Each run also records the CPU seconds the
# registry (and MinIO) spent during it, and for Slipway what its Go runtime
# allocated (from /metrics): the summary reports both per GiB pushed.
#
# Knobs: REPS=3 SLEEP=10 DROP=1 DURATION=5s BENCH_DIR=/work/slipway-bench
#   PHASES="count rows" ROWS="push-16m push-256k pull-16m pull-256k manifest-head manifest-get"
#   REGBENCH_FLAGS (extra regbench flags for the rows, e.g. "-n 8" for a smoke test)
#   PERF=1: perf record (call graphs) the registry and MinIO during each timed
#     run; the top of each profile is kept beside RESULTS
#     (*.perf-ROW-SYSTEM-REP[-minio].txt, flat, and .graph.txt, the callers of
#     the symbols above 2%)
#   QUIET_PCT=10 QUIET_MAX=20 SLIPWAY_BIN STOCK_BIN MINIO_BIN KEEP=0 RESULTS
#   BASE_PORT=5300 (registries 5301.., MinIO BASE_PORT+50, proxies BASE_PORT+60..)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPS=${REPS:-3}
SLEEP=${SLEEP:-10}
DROP=${DROP:-1}
DURATION=${DURATION:-5s}
PHASES=${PHASES:-count rows}
PERF=${PERF:-0}
ROWS=${ROWS:-push-16m push-256k pull-16m pull-256k manifest-head manifest-get}
QUIET_MAX=${QUIET_MAX:-20}
BASE_PORT=${BASE_PORT:-5300}
STOCK_VERSION=v3.1.2
RESULTS=${RESULTS:-$REPO/bench/results/s3-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
COMMAND="REPS=$REPS SLEEP=$SLEEP DROP=$DROP DURATION=$DURATION bench/run-s3.sh"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_run s3run

# --- build ----------------------------------------------------------------------
SLIPWAY_GIVEN=${SLIPWAY_BIN:-} # a binary given by the caller, not built from this tree
build_bench s3count floor
STOCK_BIN=${STOCK_BIN:-$(go env GOPATH)/bin/registry}
if [[ ! -x $STOCK_BIN ]]; then
	go install "github.com/distribution/distribution/v3/cmd/registry@$STOCK_VERSION"
	STOCK_BIN=$(go env GOPATH)/bin/registry
fi
mkdir -p "$RUN_DIR/bin"
cp "$STOCK_BIN" "$RUN_DIR/bin/distribution-$STOCK_VERSION"
STOCK_EXE=$RUN_DIR/bin/distribution-$STOCK_VERSION
[[ -x $MINIO_BIN ]] || die "no MinIO at $MINIO_BIN"

# --- credentials ------------------------------------------------------------------
bench_credentials


# --- MinIO ----------------------------------------------------------------------------
start_minio
for b in raw stock; do
	"$RB" -scenario raw-push-16m -phase setup -state "$RUN_DIR/mkbucket" -s3-endpoint "$MINIO_EP" -s3-bucket "$b" 2>>"$CLIENT_LOG" >/dev/null || die "cannot create bucket $b"
done

# --- registries -------------------------------------------------------------------------
# start NAME PORT S3ENDPOINT: NAME is slipway[-noredir][-count], stock[...]
# or floor[-nohash]
start() {
	local name=$1 port=$2 ep=$3 cfg=$RUN_DIR/$1.yml redirect=true
	[[ $name == *noredir* ]] && redirect=false
	port_free "$port" || die "port $port in use (set BASE_PORT)"
	case $name in
	slipway*)
		slipway_s3_yaml "$port" "$ep" "$redirect" >"$cfg"
		local unset_env=()
		for v in $(compgen -e); do [[ $v == SLIPWAY_* || $v == AWS_* ]] && unset_env+=(-u "$v"); done
		env "${unset_env[@]}" "$SLIPWAY_BIN" serve --config "$cfg" >>"$RUN_DIR/$name.log" 2>&1 &
		;;
	stock*)
		local disable=false
		[[ $redirect == false ]] && disable=true
		stock_config "$port" "$(stock_s3_storage "$ep" stock)
  redirect:
    disable: $disable" >"$cfg"
		OTEL_TRACES_EXPORTER=none "$STOCK_EXE" serve "$cfg" >>"$RUN_DIR/$name.log" 2>&1 &
		;;
	floor*)
		# the floor (bench/floor): credentials from the environment
		# (MINIO_ROOT_USER / MINIO_ROOT_PASSWORD), not the command line
		local hash=true
		[[ $name == *nohash* ]] && hash=false
		"$RUN_DIR/floor" -listen "127.0.0.1:$port" -s3-endpoint "$ep" -s3-bucket floor -hash="$hash" >>"$RUN_DIR/$name.log" 2>&1 &
		;;
	esac
	started "$name" "$port" 200 401
	log "$name at ${URL[$name]} (pid ${PID[$name]}, S3 via $ep)"
}

# --- machine facts ----------------------------------------------------------------------
machine() {
	echo "- Command: \`$COMMAND\` (median of $REPS, systems alternating)"
	echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- $(cpu_facts)"
	s3_facts
}
machine | sed 's/^/# /' >>"$RESULTS"

# --- phase: count -------------------------------------------------------------------------
if [[ " $PHASES " == *" count "* ]]; then
	i=0
	for sys in slipway slipway-noredir stock stock-noredir; do
		i=$((i + 1))
		lp=$((BASE_PORT + 60 + i)) cp=$((BASE_PORT + 70 + i))
		name=$sys-count
		"$RUN_DIR/s3count" -listen "127.0.0.1:$lp" -target "http://$MINIO_EP" -control "127.0.0.1:$cp" >>"$RUN_DIR/s3count.log" 2>&1 &
		PID[proxy-$sys]=$!
		wait_http "proxy-$sys" "http://127.0.0.1:$cp/take" 200
		start "$name" $((BASE_PORT + 10 + i)) "127.0.0.1:$lp"
		sleep 1
		if out=$("$RB" -url "${URL[$name]}" -scenario s3-ops -label "$sys" -s3-counter "127.0.0.1:$cp" 2>>"$CLIENT_LOG"); then
			printf '%s\n' "$out" >>"$RESULTS"
			log "counted $sys: $(python3 -c 'import json,sys; e=json.loads(sys.argv[1])["extra"]; print(", ".join("%s %d" % (k, v["total"]) for k, v in e.items()))' "$out")"
		else
			printf '%s\n' "$out" >>"$RESULTS"
			log "count $sys FAILED: $(tail -1 "$CLIENT_LOG")"
		fi
		stop "$name"
		stop "proxy-$sys"
	done
fi

# --- phase: rows ---------------------------------------------------------------------------
BG=0
# perf_start NAME PID / perf_stop NAME: profile PID (call graphs) in
# between; keep the top of the profile beside RESULTS: .perf-NAME.txt
# (flat) and .perf-NAME.graph.txt (callers of the symbols above 2 %).
perf_start() {
	perf record -q -F 499 -g -p "$2" -o "$RUN_DIR/perf-$1.data" 2>>"$RUN_DIR/perf.log" &
	PID[perf-$1]=$!
}
perf_stop() {
	local data=$RUN_DIR/perf-$1.data top=${RESULTS%.jsonl}.perf-$1
	kill -INT "${PID[perf-$1]}" 2>/dev/null || true
	wait "${PID[perf-$1]}" 2>/dev/null || true
	unset "PID[perf-$1]"
	perf report -i "$data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -E '^ +[0-9.]+%' | head -40 >"$top.txt" || true
	perf report -i "$data" --no-children --sort symbol --stdio -g caller,0.5,callee --percent-limit 2 2>/dev/null | grep -v '^$' >"$top.graph.txt" || true
}
failures=0
measure() { # system row rep
	local sys=$1 row=$2 rep=$3 out rc=0 args
	if [[ $sys == raw ]]; then
		args=(-scenario "raw-$row" -s3-endpoint "$MINIO_EP" -s3-bucket raw)
	else
		args=(-url "${URL[$sys]}" -scenario "$row")
	fi
	args+=(-state "$RUN_DIR/state-$sys" -label "$sys" -rep "$rep" -duration "$DURATION")
	# shellcheck disable=SC2206
	args+=(${REGBENCH_FLAGS:-})
	if ! out=$(timeout 900 "$RB" "${args[@]}" -phase setup 2>>"$CLIENT_LOG"); then
		record_result "$row rep $rep $sys" "$out" 1 setup
		return
	fi
	prep
	local pid=${PID[$sys]:-${PID[minio]}} profiled=()
	[[ $sys == slipway* ]] && args+=(-server-metrics "${URL[$sys]}/metrics")
	if [[ $PERF == 1 ]]; then
		# the registry (raw: none) and MinIO, each in its own profile
		[[ $sys != raw ]] && perf_start "$row-$sys-$rep" "$pid" && profiled+=("$row-$sys-$rep")
		perf_start "$row-$sys-$rep-minio" "${PID[minio]}" && profiled+=("$row-$sys-$rep-minio")
	fi
	out=$(timeout 900 "$RB" "${args[@]}" -phase run -bg-busy-pct "$BG" -server-pid "$pid" -also-pids "${PID[minio]}" 2>>"$CLIENT_LOG") || rc=$?
	local p
	for p in "${profiled[@]}"; do perf_stop "$p"; done
	record_result "$row rep $rep $sys" "$out" "$rc"
}
if [[ " $PHASES " == *" rows "* ]]; then
	start slipway $((BASE_PORT + 1)) "$MINIO_EP"
	start slipway-noredir $((BASE_PORT + 2)) "$MINIO_EP"
	start stock $((BASE_PORT + 3)) "$MINIO_EP"
	start stock-noredir $((BASE_PORT + 4)) "$MINIO_EP"
	if [[ " $ROWS " == *" push-"* ]]; then
		start floor $((BASE_PORT + 5)) "$MINIO_EP"
		start floor-nohash $((BASE_PORT + 6)) "$MINIO_EP"
	fi
	read -r -a RS <<<"$ROWS"
	started=$SECONDS
	for i in "${!RS[@]}"; do
		row=${RS[$i]}
		case $row in
		push-*) systems=(raw slipway stock floor floor-nohash) ;;
		pull-*) systems=(raw slipway stock slipway-noredir stock-noredir) ;;
		manifest-*) systems=(slipway stock) ;;
		*) die "unknown row $row" ;;
		esac
		for ((rep = 1; rep <= REPS; rep++)); do
			alternate_order "$rep" "$i" "${systems[@]}"
			for sys in "${ORDER[@]}"; do measure "$sys" "$row" "$rep"; done
		done
	done
	log "rows measured in $((SECONDS - started)) s, $failures failed"
fi

{
	echo "### S3: Slipway vs stock distribution $STOCK_VERSION vs raw minio-go"
	echo
	machine
	echo
	python3 "$REPO/bench/s3summary.py" "$RESULTS"
} | tee "${RESULTS%.jsonl}.md"
log "raw results: $RESULTS"
((failures == 0)) || exit 1
