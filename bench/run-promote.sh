#!/usr/bin/env bash
# bench/run-promote.sh — promotion latency (staging → production) of a
# 10-layer image, 1 MiB and 1 GiB, on S3 (one local MinIO), against
# `crane copy` of the same image between the same repositories through the
# registry API, measured in the same run. See BENCHMARKS.md ("Promotion").
#
# One MinIO (/root/go/bin/minio or $MINIO_BIN) with its data dir under
# BENCH_DIR (a real disk, not tmpfs), one Slipway on bucket "slipway"
# (storage.s3, redirect: true, token auth with an admin user for this run)
# whose stages are staging/ → production/ with production *not* immutable
# (this bench only), so that crane may write into production/ too.
#
# Rows (regbench -scenario): promote-1m-warm promote-1m-cold
# promote-1g-warm promote-1g-cold. Each repetition of a row runs regbench's
# untimed setup (push the source image once per size; for cold rows, mount
# it into one fresh staging app per operation), then sync, sleep SLEEP, a
# wait for a quiet machine, then WARMUP + ITERS iterations, each one
# promotion, one `crane copy` (process), one in-process crane.Copy and one
# `crane digest` (process start-up baseline), in rotating order.
#
# Phase "count" (first, ~1 min): a second Slipway on the same bucket talks
# to MinIO through bench/s3count; one operation of each kind per row, with
# the S3 requests it caused.
#
# Knobs: ITERS=30 WARMUP=3 REPS=3 SLEEP=5 PHASES="count rows"
#   ROWS="promote-1m-warm promote-1m-cold promote-1g-warm promote-1g-cold"
#   BENCH_DIR=/work/slipway-bench QUIET_PCT=10 QUIET_MAX=20 KEEP=0 RESULTS
#   SLIPWAY_BIN MINIO_BIN CRANE_BIN BASE_PORT=5400 (Slipway BASE_PORT+1,
#   count instance +11, MinIO +50/+51, s3count proxy +61/+71)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ITERS=${ITERS:-30}
WARMUP=${WARMUP:-3}
REPS=${REPS:-3}
SLEEP=${SLEEP:-5}
PHASES=${PHASES:-count rows}
ROWS=${ROWS:-promote-1m-warm promote-1m-cold promote-1g-warm promote-1g-cold}
QUIET_MAX=${QUIET_MAX:-20}
BASE_PORT=${BASE_PORT:-5400}
CRANE_VERSION=v0.22.1
RESULTS=${RESULTS:-$REPO/bench/results/promote-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
COMMAND="ITERS=$ITERS WARMUP=$WARMUP REPS=$REPS SLEEP=$SLEEP bench/run-promote.sh"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_numbers ITERS WARMUP REPS SLEEP BASE_PORT
((ITERS >= 1)) || die "ITERS must be ≥ 1"
((WARMUP >= 1)) || die "WARMUP must be ≥ 1 (the first copy into a warm target is a cold one)"

start_run promoterun

# --- build ------------------------------------------------------------------------
build_bench s3count
CRANE_BIN=${CRANE_BIN:-$(go env GOPATH)/bin/crane}
if [[ ! -x $CRANE_BIN ]]; then
	go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
	CRANE_BIN=$(go env GOPATH)/bin/crane
fi
[[ -x $MINIO_BIN ]] || die "no MinIO at $MINIO_BIN"
command -v python3 >/dev/null || die "python3 is needed for the summary"

# --- credentials --------------------------------------------------------------------
bench_credentials
# crane's login lives in this run's own docker config.
export DOCKER_CONFIG=$RUN_DIR/docker
mkdir -p "$DOCKER_CONFIG"


# --- MinIO ------------------------------------------------------------------------------
start_minio

# --- Slipway --------------------------------------------------------------------------------
# start NAME PORT S3ENDPOINT
start() {
	local name=$1 port=$2 ep=$3 cfg=$RUN_DIR/$1.yml v
	port_free "$port" || die "port $port in use (set BASE_PORT)"
	{
		slipway_s3_yaml "$port" "$ep" true
		cat <<-EOF
		# This bench only: production is not immutable, so that crane copy
		# may write the same repositories the promotions write.
		stages:
		  - name: staging
		    prefix: staging/
		  - name: production
		    prefix: production/
		    promote_from: [staging]
		    immutable: false
		EOF
	} >"$cfg"
	local unset_env=()
	for v in $(compgen -e); do [[ $v == SLIPWAY_* || $v == AWS_* ]] && unset_env+=(-u "$v"); done
	env "${unset_env[@]}" "$SLIPWAY_BIN" serve --config "$cfg" >>"$RUN_DIR/$name.log" 2>&1 &
	PID[$name]=$!
	URL[$name]=http://127.0.0.1:$port
	wait_http "$name" "${URL[$name]}/v2/" 401
	printf '%s' "$BENCH_PASSWORD" | "$CRANE_BIN" auth login "127.0.0.1:$port" -u "$BENCH_USER" --password-stdin >>"$CLIENT_LOG" 2>&1 ||
		die "crane auth login 127.0.0.1:$port failed"
	log "$name at ${URL[$name]} (pid ${PID[$name]}, S3 via $ep)"
}

# --- machine facts ------------------------------------------------------------------------------
disk_dev=$(df --output=source "$BENCH_DIR" | tail -1)
disk_rot=$(lsblk -ndo ROTA "$disk_dev" 2>/dev/null | tr -d ' ' || true)
machine() {
	echo "- Command: \`$COMMAND\` ($REPS runs × $ITERS timed iterations after $WARMUP discarded, operations interleaved)"
	echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- $(cpu_facts)"
	echo "- Disk: MinIO's one drive $RUN_DIR/minio-data on $disk_dev ($(findmnt -n -o FSTYPE -T "$BENCH_DIR"), rotational=${disk_rot:-?}); MinIO: $("$MINIO_BIN" --version 2>&1 | head -1)"
	echo "- Go: $(go version | awk '{print $3}'); crane: $("$CRANE_BIN" version 2>&1) ($CRANE_BIN); Slipway: $(cd "$REPO" && git rev-parse --short HEAD) ($(cd "$REPO" && git status --porcelain | grep -qv '^?? bench' && echo "+ uncommitted changes" || echo clean))"
}
machine | sed 's/^/# /' >>"$RESULTS"

read -r -a RS <<<"$ROWS"
for row in "${RS[@]}"; do
	case $row in promote-1m-warm | promote-1m-cold | promote-1g-warm | promote-1g-cold) ;; *) die "unknown row $row" ;; esac
done
failures=0

# --- phase: count ---------------------------------------------------------------------------------
if [[ " $PHASES " == *" count "* ]]; then
	lp=$((BASE_PORT + 61)) cp=$((BASE_PORT + 71))
	port_free "$lp" && port_free "$cp" || die "port $lp or $cp in use (set BASE_PORT)"
	"$RUN_DIR/s3count" -listen "127.0.0.1:$lp" -target "http://$MINIO_EP" -control "127.0.0.1:$cp" >>"$RUN_DIR/s3count.log" 2>&1 &
	PID[proxy]=$!
	wait_http proxy "http://127.0.0.1:$cp/take" 200
	start slipway-count $((BASE_PORT + 11)) "127.0.0.1:$lp"
	for row in "${RS[@]}"; do
		args=(-url "${URL[slipway-count]}" -scenario "$row" -state "$RUN_DIR/state" -label slipway -crane "$CRANE_BIN" -iterations 1 -warmup 1)
		if out=$(timeout 900 "$RB" "${args[@]}" -phase setup 2>>"$CLIENT_LOG") &&
			out=$(timeout 900 "$RB" "${args[@]}" -phase run -s3-counter "127.0.0.1:$cp" 2>>"$CLIENT_LOG"); then
			printf '%s\n' "$out" >>"$RESULTS"
			log "counted $row: $(python3 -c 'import json,sys; e=json.loads(sys.argv[1])["extra"]["counts"]; print(", ".join("%s %d" % (k, v["total"]) for k, v in e.items()))' "$out")"
		else
			printf '%s\n' "$out" >>"$RESULTS"
			failures=$((failures + 1))
			log "count $row FAILED: $(tail -1 "$CLIENT_LOG")"
		fi
	done
	stop slipway-count
	stop proxy
fi

# --- phase: rows --------------------------------------------------------------------------------------
BG=0
prep() {
	sync
	sleep "$SLEEP"
	wait_quiet
}
measure() { # row rep
	local row=$1 rep=$2 out rc=0 args
	args=(-url "${URL[slipway]}" -scenario "$row" -state "$RUN_DIR/state" -label slipway -rep "$rep"
		-crane "$CRANE_BIN" -iterations "$ITERS" -warmup "$WARMUP")
	if ! out=$(timeout 1800 "$RB" "${args[@]}" -phase setup 2>>"$CLIENT_LOG"); then
		failures=$((failures + 1))
		printf '%s\n' "$out" >>"$RESULTS"
		log "$row rep $rep: setup FAILED: $(tail -1 "$CLIENT_LOG")"
		return
	fi
	prep
	out=$(timeout 1800 "$RB" "${args[@]}" -phase run -bg-busy-pct "$BG" 2>>"$CLIENT_LOG") || rc=$?
	printf '%s\n' "$out" >>"$RESULTS"
	if ((rc != 0)); then
		failures=$((failures + 1))
		log "$row rep $rep: FAILED: $(tail -1 "$CLIENT_LOG")"
		return
	fi
	log "$row rep $rep: $(python3 -c '
import json, sys
s = json.loads(sys.argv[1])["extra"]["stats_ms"]
print(", ".join("%s p50 %.1f p99 %.1f ms" % (k, v["p50"], v["p99"]) for k, v in s.items()))' "$out") (bg ${BG}%)"
}
if [[ " $PHASES " == *" rows "* ]]; then
	start slipway $((BASE_PORT + 1)) "$MINIO_EP"
	started=$SECONDS
	for ((rep = 1; rep <= REPS; rep++)); do
		for row in "${RS[@]}"; do measure "$row" "$rep"; done
	done
	log "rows measured in $((SECONDS - started)) s, $failures failed"
fi

{
	echo "### Promotion vs crane copy"
	echo
	machine
	echo
	python3 "$REPO/bench/promotesummary.py" "$RESULTS"
} | tee "${RESULTS%.jsonl}.md"
log "raw results: $RESULTS"
((failures == 0)) || exit 1
