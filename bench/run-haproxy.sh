#!/usr/bin/env bash
# bench/run-haproxy.sh — what HAProxy in front of three replicas costs, and
# whether a SIGTERMed replica drains without a failed request. See
# BENCHMARKS.md ("Behind HAProxy").
#
# One MinIO (/root/go/bin/minio or $MINIO_BIN, data under BENCH_DIR, a real
# disk), one bucket "slipway", three Slipway replicas on it sharing the
# token signing key and http.secret (http.public_url unset, so Location
# headers and the token realm follow the Host each client called), and
# Debian's HAProxy (/usr/sbin/haproxy or $HAPROXY_BIN) in front of them,
# configured as integration/cluster does: balance roundrobin, no
# stickiness, option httpchk GET /readyz, inter 500ms fall 2 rise 2,
# retries 3, option redispatch. Systems:
#   direct   replica 1, called directly
#   haproxy  HAProxy, each request to the next of the three replicas
#
# Phase "rows": for each row, REPS repetitions, the two systems in
# alternating order, before each timed run sync, drop_caches, sleep SLEEP,
# wait for a quiet machine (like run-s3.sh). Rows: manifest-head (16
# clients HEAD one manifest by tag for DURATION: req/s, p50, p99) and
# push-16m (64 blobs of 16 MiB, 4 workers, docker-style chunked PATCH:
# MiB/s). The summary gives medians and haproxy/direct ratios of the same
# run.
#
# Phase "drain": 16 clients HEAD a manifest by tag through HAProxy for
# DRAIN_DURATION; a third of the way in, replica 2 gets SIGTERM (its
# http.drain_delay is DRAIN_DELAY). Recorded: whether regbench saw any
# failed request (it stops at the first), HAProxy's counters (5xx answers
# sent, connection errors, retries, redispatches) and how long the replica
# took to exit.
#
# Knobs: REPS=3 SLEEP=10 DROP=1 DURATION=5s DRAIN_DURATION=15s DRAIN_DELAY=3s
#   PHASES="rows drain" ROWS="manifest-head push-16m"
#   REGBENCH_FLAGS (extra regbench flags for the rows, e.g. "-n 4" for a smoke test)
#   QUIET_PCT=10 QUIET_MAX=20 SLIPWAY_BIN MINIO_BIN HAPROXY_BIN KEEP=0 RESULTS
#   BASE_PORT=5400 (replicas 5401-5403, HAProxy 5410, MinIO BASE_PORT+50)
#   SERVERS=3: how many of the replicas HAProxy balances over. SERVERS=1
#     puts HAProxy in front of replica 1 alone, the very one the direct
#     rows call: what HAProxy's own hop costs, with no fan-out.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPS=${REPS:-3}
SLEEP=${SLEEP:-10}
DROP=${DROP:-1}
DURATION=${DURATION:-5s}
DRAIN_DURATION=${DRAIN_DURATION:-15s}
DRAIN_DELAY=${DRAIN_DELAY:-3s}
PHASES=${PHASES:-rows drain}
ROWS=${ROWS:-manifest-head push-16m}
QUIET_MAX=${QUIET_MAX:-20}
BASE_PORT=${BASE_PORT:-5400}
SERVERS=${SERVERS:-3}
HAPROXY_BIN=${HAPROXY_BIN:-/usr/sbin/haproxy}
RESULTS=${RESULTS:-$REPO/bench/results/haproxy-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
COMMAND="SERVERS=$SERVERS REPS=$REPS SLEEP=$SLEEP DROP=$DROP DURATION=$DURATION DRAIN_DURATION=$DRAIN_DURATION bench/run-haproxy.sh"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $SERVERS =~ ^[123]$ ]] || die "SERVERS must be 1, 2 or 3"
[[ $SERVERS == 3 || " $PHASES " != *" drain "* ]] || die "the drain phase SIGTERMs replica 2 of three: SERVERS=3 (or PHASES=rows)"
[[ -x $HAPROXY_BIN ]] || die "no haproxy at $HAPROXY_BIN (apt-get install haproxy, or set HAPROXY_BIN)"
start_run haproxyrun
build_bench
[[ -x $MINIO_BIN ]] || die "no MinIO at $MINIO_BIN"
bench_credentials
start_minio
SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')

# replica N: Slipway on BASE_PORT+N, the shared bucket, signing key and secret.
replica() {
	local n=$1 port=$((BASE_PORT + $1)) cfg=$RUN_DIR/replica$1.yml
	port_free "$port" || die "port $port in use (set BASE_PORT)"
	# HAProxy connects from 127.0.0.2 (its `source`), the one proxy the
	# replicas trust, as in integration/internal/harness/haproxy.go.
	slipway_s3_yaml "$port" "$MINIO_EP" false | sed '/^http:$/a\  trusted_proxies: ["127.0.0.2/32"]' >"$cfg"
	local unset_env=()
	for v in $(compgen -e); do [[ $v == SLIPWAY_* || $v == AWS_* ]] && unset_env+=(-u "$v"); done
	env "${unset_env[@]}" SLIPWAY_HTTP_SECRET="$SECRET" SLIPWAY_HTTP_DRAIN_DELAY="$DRAIN_DELAY" \
		"$SLIPWAY_BIN" serve --config "$cfg" >>"$RUN_DIR/replica$n.log" 2>&1 &
	started "replica$n" "$port" 401
	log "replica $n at ${URL[replica$n]} (pid ${PID[replica$n]})"
}

HAPROXY_SOCK=$RUN_DIR/haproxy.sock
start_haproxy() {
	local port=$((BASE_PORT + 10)) cfg=$RUN_DIR/haproxy.cfg
	port_free "$port" || die "port $port in use (set BASE_PORT)"
	# The configuration integration/cluster runs (harness.HAProxyConfig),
	# not a copy of it.
	local servers=() n
	for ((n = 1; n <= SERVERS; n++)); do servers+=("127.0.0.1:$((BASE_PORT + n))"); done
	(cd "$REPO" && go run ./integration/internal/harness/haproxycfg -bind "127.0.0.1:$port" -sock "$HAPROXY_SOCK" "${servers[@]}") >"$cfg" ||
		die "cannot write the HAProxy configuration"
	"$HAPROXY_BIN" -db -f "$cfg" >>"$RUN_DIR/haproxy.log" 2>&1 &
	started haproxy "$port" 401
	sleep 2 # every server's first checks (rise 2, 500 ms apart)
	log "haproxy at ${URL[haproxy]} (pid ${PID[haproxy]})"
}

# haproxy_stats: HAProxy's counters as one JSON object: the frontend's
# answers by class and the backend's errors, retries and redispatches, and
# each server's status.
haproxy_stats() {
	python3 - "$HAPROXY_SOCK" <<-'EOF'
		import csv, io, json, socket, sys
		s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"show stat\n")
		data = b"".join(iter(lambda: s.recv(65536), b""))
		rows = list(csv.DictReader(io.StringIO(data.decode().lstrip("# "))))
		out = {}
		for r in rows:
		    if r["pxname"] == "registry" and r["svname"] == "FRONTEND":
		        out.update({k: int(r[k] or 0) for k in ("req_tot", "hrsp_2xx", "hrsp_4xx", "hrsp_5xx", "ereq")})
		    elif r["pxname"] == "slipway" and r["svname"] == "BACKEND":
		        out.update({k: int(r[k] or 0) for k in ("econ", "eresp", "wretr", "wredis")})
		    elif r["pxname"] == "slipway":
		        out["status_" + r["svname"]] = r["status"]
		print(json.dumps(out))
	EOF
}

machine() {
	echo "- Command: \`$COMMAND\` (median of $REPS, systems alternating)"
	echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- $(cpu_facts)"
	echo "- MinIO: $("$MINIO_BIN" --version 2>&1 | head -1), one drive under $BENCH_DIR; HAProxy: $("$HAPROXY_BIN" -v | head -1 | awk '{print $3}')"
	echo "- Slipway: $(cd "$REPO" && git rev-parse --short HEAD), 3 replicas, http.drain_delay $DRAIN_DELAY"
	echo "- HAProxy servers: $SERVERS"
}
machine | sed 's/^/# /' >>"$RESULTS"

for n in 1 2 3; do replica "$n"; done
start_haproxy

BG=0
failures=0
measure() { # system row rep
	local sys=$1 row=$2 rep=$3 out rc=0 args url
	url=${URL[replica1]}
	[[ $sys == haproxy ]] && url=${URL[haproxy]}
	args=(-url "$url" -scenario "$row" -state "$RUN_DIR/state-$sys-$row" -label "$sys" -rep "$rep" -duration "$DURATION")
	# shellcheck disable=SC2206
	args+=(${REGBENCH_FLAGS:-})
	if ! out=$(timeout 900 "$RB" "${args[@]}" -phase setup 2>>"$CLIENT_LOG"); then
		record_result "$row rep $rep $sys" "$out" 1 setup
		return
	fi
	prep
	out=$(timeout 900 "$RB" "${args[@]}" -phase run -bg-busy-pct "$BG" -server-pid "${PID[replica1]}" 2>>"$CLIENT_LOG") || rc=$?
	record_result "$row rep $rep $sys" "$out" "$rc"
}
if [[ " $PHASES " == *" rows "* ]]; then
	read -r -a RS <<<"$ROWS"
	for i in "${!RS[@]}"; do
		for ((rep = 1; rep <= REPS; rep++)); do
			alternate_order "$rep" "$i" direct haproxy
			for sys in "${ORDER[@]}"; do measure "$sys" "${RS[$i]}" "$rep"; done
		done
	done
fi

if [[ " $PHASES " == *" drain "* ]]; then
	state=$RUN_DIR/state-drain
	"$RB" -url "${URL[haproxy]}" -scenario manifest-head -state "$state" -phase setup >/dev/null 2>>"$CLIENT_LOG" || die "drain setup failed: $(tail -1 "$CLIENT_LOG")"
	before=$(haproxy_stats)
	secs=${DRAIN_DURATION%s}
	"$RB" -url "${URL[haproxy]}" -scenario manifest-head -state "$state" -phase run -label haproxy-drain -clients 16 -duration "$DRAIN_DURATION" >"$RUN_DIR/drain.out" 2>>"$CLIENT_LOG" &
	PID[drain-load]=$!
	sleep $((secs / 3))
	t0=$(date +%s.%N)
	kill -TERM "${PID[replica2]}"
	wait "${PID[replica2]}" || log "replica 2 exited with status $?"
	exited=$(python3 -c "import sys; print(round($(date +%s.%N) - $t0, 2))")
	unset "PID[replica2]"
	rc=0
	wait "${PID[drain-load]}" || rc=$?
	unset "PID[drain-load]"
	after=$(haproxy_stats)
	python3 - "$before" "$after" "$rc" "$exited" "$RUN_DIR/drain.out" "$(tail -1 "$CLIENT_LOG")" >>"$RESULTS" <<-'EOF'
		import json, sys
		b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
		out = open(sys.argv[5]).read().strip()
		r = json.loads(out) if out else {}
		d = {k: a[k] - b[k] for k in a if isinstance(a[k], int)}
		d.update({k: a[k] for k in a if k.startswith("status_")})
		print(json.dumps({"registry": "haproxy", "scenario": "sigterm-drain", "clients": 16,
		    "client_ok": sys.argv[3] == "0", "client_error": "" if sys.argv[3] == "0" else sys.argv[6],
		    "requests": r.get("ops"), "p99_ms": r.get("p99_ms"), "replica_exit_s": float(sys.argv[4]), "haproxy": d}))
	EOF
	log "drain: $(tail -1 "$RESULTS")"
	[[ $rc == 0 ]] || failures=$((failures + 1))
fi

{
	echo "### Behind HAProxy: three replicas vs one replica directly"
	echo
	machine
	echo
	python3 "$REPO/bench/haproxysummary.py" "$RESULTS"
} | tee "${RESULTS%.jsonl}.md"
log "raw results: $RESULTS"
((failures == 0)) || exit 1
