#!/usr/bin/env bash
# bench/run-tags.sh — what reading a repository's tags with their digests
# costs as it grows: GET /api/v1/repositories/{name}/tags and the admin
# repository page at 100, 1,000 and 10,000 tags, on S3 (one local MinIO),
# for one or two Slipway builds side by side. See BENCHMARKS.md ("Tags as
# a repository grows").
#
# One MinIO (/root/go/bin/minio or $MINIO_BIN) with its data dir under
# BENCH_DIR (a real disk, not tmpfs), one Slipway per build on the same
# bucket (storage.s3, token auth with an admin user for this run, stages
# staging/ → production/). The repository is staging/bench-tags-<N>.
#
# Builds: this checkout (label "after"), and with BEFORE_REV set, that
# git revision of this repository (label "before"; its tree is exported
# with git archive and built in RUN_DIR).
#
# Rows (regbench -scenario): tags-100 tags-1000 tags-10000. Each row's
# regbench setup (one image, then N manifest PUTs by tag, 16 at a time)
# runs once through the first build; then REPS repetitions, each one run
# per build in alternating order (sync, sleep SLEEP, a wait for a quiet
# machine, then WARMUP + ITERS rounds of one API read and one admin page).
#
# Phase "puts" (PHASES="rows puts"): what a tag write costs, REPS runs per
# build, alternating: 99 manifest PUTs by tag one after the other (regbench
# tags-100 setup with -workers 1, each run on a fresh repository).
#
# Knobs: ITERS=20 WARMUP=3 REPS=3 SLEEP=2 ROWS="tags-100 tags-1000 tags-10000"
#   PHASES=rows
#   BEFORE_REV (unset: this checkout only) BENCH_DIR=/work/slipway-bench
#   QUIET_PCT=10 QUIET_MAX=20 KEEP=0 RESULTS SLIPWAY_BIN MINIO_BIN
#   BASE_PORT=5500 (builds BASE_PORT+1, +2; MinIO +50/+51)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ITERS=${ITERS:-20}
WARMUP=${WARMUP:-3}
REPS=${REPS:-3}
SLEEP=${SLEEP:-2}
ROWS=${ROWS:-tags-100 tags-1000 tags-10000}
PHASES=${PHASES:-rows}
QUIET_MAX=${QUIET_MAX:-20}
BASE_PORT=${BASE_PORT:-5500}
BEFORE_REV=${BEFORE_REV:-}
RESULTS=${RESULTS:-$REPO/bench/results/tags-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
COMMAND="ITERS=$ITERS WARMUP=$WARMUP REPS=$REPS PHASES='$PHASES'${BEFORE_REV:+ BEFORE_REV=$BEFORE_REV} bench/run-tags.sh"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_numbers ITERS WARMUP REPS SLEEP BASE_PORT
((ITERS >= 1)) || die "ITERS must be ≥ 1"
read -r -a RS <<<"$ROWS"
for row in "${RS[@]}"; do
	case $row in tags-100 | tags-1000 | tags-10000) ;; *) die "unknown row $row" ;; esac
done

start_run tagsrun

# --- build ------------------------------------------------------------------------
build_bench
declare -A BIN=([after]=$SLIPWAY_BIN)
LABELS=(after)
if [[ -n $BEFORE_REV ]]; then
	src=$RUN_DIR/before-src
	mkdir -p "$src"
	(cd "$REPO" && git archive "$BEFORE_REV") | tar -x -C "$src" || die "cannot export $BEFORE_REV"
	(cd "$src" && go build -o "$RUN_DIR/slipway-before" ./cmd/slipway) || die "$BEFORE_REV does not build"
	BIN[before]=$RUN_DIR/slipway-before
	LABELS=(before after)
fi
[[ -x $MINIO_BIN ]] || die "no MinIO at $MINIO_BIN"
command -v python3 >/dev/null || die "python3 is needed for the summary"

bench_credentials
start_minio

# --- Slipway --------------------------------------------------------------------------------
# start LABEL PORT
start() {
	local name=$1 port=$2 cfg=$RUN_DIR/$1.yml v
	port_free "$port" || die "port $port in use (set BASE_PORT)"
	cat >"$cfg" <<-EOF
		http:
		  addr: "127.0.0.1:$port"
		storage:
		  s3:
		    endpoint: "http://$MINIO_EP"
		    bucket: slipway
		    region: us-east-1
		    access_key: "$MINIO_ROOT_USER"
		    secret_key: "$MINIO_ROOT_PASSWORD"
		    create_bucket: true
		log:
		  level: warn
		$(slipway_auth_yaml)
		stages:
		  - name: staging
		    prefix: staging/
		  - name: production
		    prefix: production/
		    promote_from: [staging]
	EOF
	local unset_env=()
	for v in $(compgen -e); do [[ $v == SLIPWAY_* || $v == AWS_* ]] && unset_env+=(-u "$v"); done
	env "${unset_env[@]}" "${BIN[$name]}" serve --config "$cfg" >>"$RUN_DIR/$name.log" 2>&1 &
	PID[$name]=$!
	URL[$name]=http://127.0.0.1:$port
	wait_http "$name" "${URL[$name]}/v2/" 401
	log "$name at ${URL[$name]} (pid ${PID[$name]}, ${BIN[$name]})"
}
port=$((BASE_PORT + 1))
for label in "${LABELS[@]}"; do
	start "$label" "$port"
	port=$((port + 1))
done

# --- machine facts ------------------------------------------------------------------------------
disk_dev=$(df --output=source "$BENCH_DIR" | tail -1)
machine() {
	echo "- Command: \`$COMMAND\` ($REPS runs × $ITERS timed rounds after $WARMUP discarded, builds alternating)"
	echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- $(cpu_facts)"
	echo "- Disk: MinIO's one drive on $disk_dev ($(findmnt -n -o FSTYPE -T "$BENCH_DIR")); MinIO: $("$MINIO_BIN" --version 2>&1 | head -1)"
	echo "- Slipway: after = $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git status --porcelain | grep -qv '^?? bench' && echo " + uncommitted changes")${BEFORE_REV:+; before = $(cd "$REPO" && git rev-parse --short "$BEFORE_REV")}"
}
machine | sed 's/^/# /' >>"$RESULTS"

# settle: written data on disk, a pause, and a quiet machine (sets BG).
settle() {
	sync
	sleep "$SLEEP"
	wait_quiet
}

# --- phase: puts ---------------------------------------------------------------------------------
failures=0
PUTS=$RUN_DIR/puts.txt
: >"$PUTS"
if [[ " $PHASES " == *" puts "* ]]; then
	for ((rep = 1; rep <= REPS; rep++)); do
		alternate_order "$rep" 0 "${LABELS[@]}"
		for label in "${ORDER[@]}"; do
			settle
			if line=$(timeout 900 "$RB" -url "${URL[$label]}" -scenario tags-100 -workers 1 -repo-prefix "put-$label-$rep" \
				-state "$RUN_DIR/puts-$label-$rep" -phase setup 2>&1 >/dev/null | grep 'manifest PUTs by tag'); then
				echo "$label ${line##*(}" | tr -d ')' >>"$PUTS"
				log "puts rep $rep $label: ${line##*: } (bg ${BG}%)"
			else
				failures=$((failures + 1))
				log "puts rep $rep $label: FAILED"
			fi
		done
	done
fi

# --- phase: rows ---------------------------------------------------------------------------------
[[ " $PHASES " == *" rows "* ]] || RS=()
for row in "${RS[@]}"; do
	state=$RUN_DIR/state
	if ! timeout 3600 "$RB" -url "${URL[${LABELS[0]}]}" -scenario "$row" -state "$state" -phase setup 2>>"$CLIENT_LOG"; then
		failures=$((failures + 1))
		log "$row: setup FAILED: $(tail -1 "$CLIENT_LOG")"
		continue
	fi
	log "$row: set up"
	for ((rep = 1; rep <= REPS; rep++)); do
		alternate_order "$rep" 0 "${LABELS[@]}"
		for label in "${ORDER[@]}"; do
			settle
			rc=0
			out=$(timeout 1800 "$RB" -url "${URL[$label]}" -scenario "$row" -state "$state" -phase run -label "$label" -rep "$rep" \
				-iterations "$ITERS" -warmup "$WARMUP" -bg-busy-pct "$BG" -server-pid "${PID[$label]}" -also-pids "${PID[minio]}" 2>>"$CLIENT_LOG") || rc=$?
			printf '%s\n' "$out" >>"$RESULTS"
			if ((rc != 0)); then
				failures=$((failures + 1))
				log "$row rep $rep $label: FAILED: $(tail -1 "$CLIENT_LOG")"
				continue
			fi
			log "$row rep $rep $label: $(python3 -c '
import json, sys
e = json.loads(sys.argv[1])["extra"]
print("api p50 %.1f p99 %.1f ms, admin p50 %.1f p99 %.1f ms" % (e["api_p50_ms"], e["api_p99_ms"], e["admin_p50_ms"], e["admin_p99_ms"]))' "$out") (bg ${BG}%)"
		done
	done
done

# --- summary: the median over repetitions of each run's p50 and p99 --------------------------------
{
	echo "### Tags as a repository grows"
	echo
	machine
	echo
	python3 - "$RESULTS" <<-'EOF'
		import json, statistics, sys
		rows = {}
		for line in open(sys.argv[1]):
		    if line.startswith("#") or not line.strip():
		        continue
		    r = json.loads(line)
		    if r.get("error"):
		        continue
		    rows.setdefault((r["extra"]["tags"], r["registry"]), []).append(r["extra"])
		med = lambda rs, k: statistics.median(x[k] for x in rs)
		print("| tags | build | API p50 | API p99 | admin p50 | admin p99 | runs |")
		print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
		for (n, label), rs in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "before")):
		    cells = ["%.1f ms" % med(rs, k) for k in ("api_p50_ms", "api_p99_ms", "admin_p50_ms", "admin_p99_ms")]
		    before = rows.get((n, "before"))
		    if label == "after" and before:
		        for i, k in ((0, "api_p50_ms"), (2, "admin_p50_ms")):
		            cells[i] += " (%.2f×)" % (med(rs, k) / med(before, k))
		    print("| %d | %s | %s | %d |" % (n, label, " | ".join(cells), len(rs)))
	EOF
	if [[ -s $PUTS ]]; then
		echo
		echo "Tag writes, one after the other (99 manifest PUTs by tag per run; median of the runs' mean):"
		echo
		awk '{ v[$1] = v[$1] " " $2 } END { for (l in v) print l, v[l] }' "$PUTS" | python3 -c '
import statistics, sys
for line in sys.stdin:
    label, *ms = line.split()
    print("- %s: %.2f ms per PUT (runs: %s)" % (label, statistics.median(float(m) for m in ms), ", ".join(ms)))'
	fi
} | tee "${RESULTS%.jsonl}.md"
log "raw results: $RESULTS"
((failures == 0)) || exit 1
