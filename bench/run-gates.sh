#!/usr/bin/env bash
# bench/run-gates.sh — promotion latency with gates on vs off, and a
# release of ten images vs one promotion (issue 15), on S3 (one local
# MinIO). See BENCHMARKS.md ("Promotion gates and releases").
#
# One Slipway on bucket "slipway" with stages staging/ → production/ (no
# gates) and staging/ → gated/ (signed_by this run's cosign key, one
# required SLSA provenance attestation). regbench -scenario gates-10 pushes
# ten 10-layer 1 MiB images, signs and attests each with cosign (offline),
# then times, interleaved: promote (→ production), promote-gated (→ gated),
# release (ten images → production), release-gated (→ gated). Targets are
# warm (the -warmup rounds are discarded). The script prints the p50s and
# the ratios gated/ungated and release/promotion of each repetition, and
# their medians.
#
# Knobs: ITERS=20 WARMUP=2 REPS=3 SLEEP=3 KINDS= (a comma-separated subset) BENCH_DIR=/work/slipway-bench
#   QUIET_PCT=10 QUIET_MAX=20 KEEP=0 RESULTS SLIPWAY_BIN MINIO_BIN COSIGN_BIN
#   CRANE_BIN BASE_PORT=5600 (Slipway BASE_PORT+1, MinIO +50/+51)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ITERS=${ITERS:-20}
WARMUP=${WARMUP:-2}
REPS=${REPS:-3}
SLEEP=${SLEEP:-3}
KINDS=${KINDS:-}
QUIET_MAX=${QUIET_MAX:-20}
BASE_PORT=${BASE_PORT:-5600}
RESULTS=${RESULTS:-$REPO/bench/results/gates-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
COMMAND="ITERS=$ITERS WARMUP=$WARMUP REPS=$REPS${KINDS:+ KINDS=$KINDS} bench/run-gates.sh"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_numbers ITERS WARMUP REPS SLEEP BASE_PORT
((ITERS >= 1 && WARMUP >= 1)) || die "ITERS and WARMUP must be ≥ 1"

start_run gatesrun
build_bench
COSIGN_BIN=${COSIGN_BIN:-$(go env GOPATH)/bin/cosign}
CRANE_BIN=${CRANE_BIN:-$(go env GOPATH)/bin/crane}
[[ -x $COSIGN_BIN ]] || die "no cosign at $COSIGN_BIN (integration/scripts/setup.sh installs it)"
[[ -x $CRANE_BIN ]] || die "no crane at $CRANE_BIN (integration/scripts/setup.sh installs it)"
[[ -x $MINIO_BIN ]] || die "no MinIO at $MINIO_BIN"

bench_credentials
export DOCKER_CONFIG=$RUN_DIR/docker
mkdir -p "$DOCKER_CONFIG"
(cd "$RUN_DIR" && COSIGN_PASSWORD= "$COSIGN_BIN" generate-key-pair --output-key-prefix bench >/dev/null 2>&1) || die "cosign generate-key-pair failed"

start_minio

port=$((BASE_PORT + 1))
port_free "$port" || die "port $port in use (set BASE_PORT)"
cfg=$RUN_DIR/slipway.yml
{
	slipway_s3_yaml "$port" "$MINIO_EP" true
	cat <<-EOF
	stages:
	  - name: staging
	    prefix: staging/
	  - name: production
	    prefix: production/
	    promote_from: [staging]
	    immutable: true
	  - name: gated
	    prefix: gated/
	    promote_from: [staging]
	    immutable: true
	    gates:
	      signed_by:
	        - name: bench
	          key_file: "$RUN_DIR/bench.pub"
	      attestations: ["https://slsa.dev/provenance/v0.2"]
	EOF
} >"$cfg"
unset_env=()
for v in $(compgen -e); do [[ $v == SLIPWAY_* || $v == AWS_* ]] && unset_env+=(-u "$v"); done
env "${unset_env[@]}" "$SLIPWAY_BIN" serve --config "$cfg" >>"$RUN_DIR/slipway.log" 2>&1 &
PID[slipway]=$!
URL[slipway]=http://127.0.0.1:$port
wait_http slipway "${URL[slipway]}/v2/" 401
printf '%s' "$BENCH_PASSWORD" | "$CRANE_BIN" auth login "127.0.0.1:$port" -u "$BENCH_USER" --password-stdin >>"$CLIENT_LOG" 2>&1 ||
	die "crane auth login failed"
log "slipway at ${URL[slipway]} (pid ${PID[slipway]})"

machine() {
	echo "- Command: \`$COMMAND\` ($REPS runs × $ITERS timed iterations after $WARMUP discarded, operations interleaved)"
	echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- $(cpu_facts)"
	echo "- Go: $(go version | awk '{print $3}'); cosign: $("$COSIGN_BIN" version 2>&1 | awk '/GitVersion/{print $2}'); Slipway: $(cd "$REPO" && git rev-parse --short HEAD)"
}
machine | sed 's/^/# /' >>"$RESULTS"

args=(-url "${URL[slipway]}" -scenario gates-10 -kinds "$KINDS" -state "$RUN_DIR/state" -label slipway -cosign "$COSIGN_BIN" -cosign-key "$RUN_DIR/bench.key"
	-iterations "$ITERS" -warmup "$WARMUP")
timeout 1800 "$RB" "${args[@]}" -phase setup >/dev/null 2>>"$CLIENT_LOG" || die "setup failed: $(tail -3 "$CLIENT_LOG")"
failures=0
for ((rep = 1; rep <= REPS; rep++)); do
	sync
	sleep "$SLEEP"
	wait_quiet
	if out=$(timeout 1800 "$RB" "${args[@]}" -rep "$rep" -phase run -server-pid "${PID[slipway]}" -also-pids "${PID[minio]}" 2>>"$CLIENT_LOG"); then
		printf '%s\n' "$out" >>"$RESULTS"
		# regbench's server_cpu_s and also_cpu_s (MinIO) cover the whole
		# run phase (every kind, warm-up included); per operation, with one
		# kind (KINDS=release) they are that kind's.
		log "rep $rep: $(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
e = r["extra"]
n = (e["warmup"] + e["iterations"]) * len(e["kinds"].split(","))
print(", ".join("%s p50 %.1f ms" % (k, v["p50"]) for k, v in e["stats_ms"].items()), "|", ", ".join("%s %.2f" % kv for kv in e["ratios"].items()),
      "| server CPU per operation: slipway %.1f ms, minio %.1f ms" % (1000 * r["server_cpu_s"] / n, 1000 * r["also_cpu_s"] / n))' "$out")"
	else
		failures=$((failures + 1))
		log "rep $rep FAILED: $(tail -1 "$CLIENT_LOG")"
	fi
done

{
	echo "### Promotion gates and releases"
	echo
	machine
	echo
	python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
rows = [r for r in rows if r.get("extra", {}).get("ratios")]
if not rows:
    print("no successful repetition"); sys.exit()
kinds = list(rows[0]["extra"]["stats_ms"])
print("| | " + " | ".join("rep %d" % r["rep"] for r in rows) + " | median |")
print("|---|" + "---|" * (len(rows) + 1))
for k in kinds:
    v = [r["extra"]["stats_ms"][k]["p50"] for r in rows]
    print("| %s p50 (ms) | %s | %.1f |" % (k, " | ".join("%.1f" % x for x in v), statistics.median(v)))
for k in rows[0]["extra"]["ratios"]:
    v = [r["extra"]["ratios"][k] for r in rows]
    print("| **%s** | %s | **%.2f** |" % (k, " | ".join("%.2f" % x for x in v), statistics.median(v)))
PY
} | tee "${RESULTS%.jsonl}.md"
log "raw results: $RESULTS"
((failures == 0)) || exit 1
