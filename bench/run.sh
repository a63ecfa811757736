#!/usr/bin/env bash
# bench/run.sh — one benchmark run of Slipway against the stock distribution
# registry v3.1.2, on the same machine and the same filesystem, with
# bench/regbench as the client. See BENCHMARKS.md for what each row means.
#
# For every scenario and repetition, each registry gets: untimed setup, then
# `sync; echo 3 > /proc/sys/vm/drop_caches; sleep $SLEEP`, then the timed run.
# Which registry goes first alternates. The Markdown table (medians and the
# Slipway/stock ratio) goes to stdout, progress to stderr, and the raw JSON
# lines to $RESULTS.
#
# Knobs (environment):
#   REPS=3             repetitions per scenario and registry; the median is reported
#   SLEEP=10           seconds to wait after sync + drop_caches before each timed run
#   DROP=1             drop the page cache before each timed run (0: only sync + sleep)
#   SCENARIOS="push-16m push-256k pull-16m pull-256k manifest-head manifest-get copy-10"
#   REGISTRIES="slipway stock"   e.g. REGISTRIES=stock while Slipway does not serve yet
#   DURATION=10s       how long manifest-head / manifest-get hammer
#   BENCH_DIR=/work/slipway-bench  where the run's data dirs go (one filesystem, not tmpfs)
#   RESULTS=bench/results/<UTC time>.jsonl   raw JSON lines (one per measurement)
#   SLIPWAY_BIN        a Slipway binary to use instead of building bin/slipway
#   STOCK_BIN=$(go env GOPATH)/bin/registry  (go install'ed at v3.1.2 if missing)
#   SLIPWAY_PORT=5201 STOCK_PORT=5202
#   REGBENCH_FLAGS     extra regbench flags, e.g. "-verify-pull"
#   KEEP=0             1: keep the registries' data dirs after the run
#   QUIET_PCT=10 QUIET_MAX=60  before each timed run, wait up to QUIET_MAX s
#                      until other processes use <= QUIET_PCT% of the CPUs
#                      (a shared machine); busier runs are flagged in the table
#
# Quick smoke test: REPS=1 SLEEP=0 DURATION=2s bench/run.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPS=${REPS:-3}
SLEEP=${SLEEP:-10}
DROP=${DROP:-1}
SCENARIOS=${SCENARIOS:-push-16m push-256k pull-16m pull-256k manifest-head manifest-get copy-10}
REGISTRIES=${REGISTRIES:-slipway stock}
DURATION=${DURATION:-10s}
BENCH_DIR=${BENCH_DIR:-/work/slipway-bench}
SLIPWAY_PORT=${SLIPWAY_PORT:-5201}
STOCK_PORT=${STOCK_PORT:-5202}
REGBENCH_FLAGS=${REGBENCH_FLAGS:-}
KEEP=${KEEP:-0}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_MAX=${QUIET_MAX:-60}
STOCK_VERSION=v3.1.2
RESULTS=${RESULTS:-$REPO/bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl}
COMMAND="REPS=$REPS SLEEP=$SLEEP DROP=$DROP DURATION=$DURATION REGISTRIES=\"$REGISTRIES\" bench/run.sh"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r -a REGS <<<"$REGISTRIES"
for r in "${REGS[@]}"; do
	case $r in slipway | stock) ;; *) die "unknown registry '$r' in REGISTRIES (slipway, stock)" ;; esac
done

# --- where the data goes: one real filesystem for both registries ---------
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
fstype=$(stat -f -c %T "$BENCH_DIR")
case $fstype in tmpfs | ramfs) die "$BENCH_DIR is on $fstype: benchmark a real disk (set BENCH_DIR)" ;; esac
RUN_DIR=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
CLIENT_LOG=$RUN_DIR/regbench.log

declare -A PID URL
cleanup() {
	local r
	for r in "${!PID[@]}"; do
		kill "${PID[$r]}" 2>/dev/null || true
		wait "${PID[$r]}" 2>/dev/null || true
	done
	if [[ $KEEP == 1 ]]; then
		log "kept $RUN_DIR"
	else
		# keep the logs beside the results, drop the blobs
		for f in "$RUN_DIR"/*.log; do
			[[ -s $f ]] && cp "$f" "${RESULTS%.jsonl}.$(basename "$f")"
		done
		rm -rf "$RUN_DIR"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------
RB=$RUN_DIR/regbench
log "building regbench"
(cd "$REPO/bench" && go build -o "$RB" ./regbench) || die "regbench does not build"

if [[ " ${REGS[*]} " == *" slipway "* ]]; then
	if [[ -z ${SLIPWAY_BIN:-} ]]; then
		log "building bin/slipway"
		(cd "$REPO" && go build -o bin/slipway ./cmd/slipway) || die "Slipway does not build (REGISTRIES=stock measures the stock registry alone)"
		SLIPWAY_BIN=$REPO/bin/slipway
	fi
fi
if [[ " ${REGS[*]} " == *" stock "* ]]; then
	STOCK_BIN=${STOCK_BIN:-$(go env GOPATH)/bin/registry}
	if [[ ! -x $STOCK_BIN ]]; then
		log "installing the stock registry $STOCK_VERSION"
		go install "github.com/distribution/distribution/v3/cmd/registry@$STOCK_VERSION"
		STOCK_BIN=$(go env GOPATH)/bin/registry
	fi
	stock_version=$("$STOCK_BIN" --version 2>&1 || true)
	[[ $stock_version == *"$STOCK_VERSION"* ]] || log "WARNING: $STOCK_BIN says '$stock_version', not $STOCK_VERSION"
	# Run a private copy, so that a `pkill registry` by someone else on a
	# shared machine does not end the benchmark half way.
	mkdir -p "$RUN_DIR/bin"
	cp "$STOCK_BIN" "$RUN_DIR/bin/distribution-$STOCK_VERSION"
	STOCK_EXE=$RUN_DIR/bin/distribution-$STOCK_VERSION
fi

# --- credentials ---------------------------------------------------------------
# Slipway has token auth on: an admin account with a random password for
# this run (bcrypt, cost 10, hashed by `slipway passwd`), and the run's own
# token signing key (generated by Slipway on first start) in RUN_DIR.
# regbench gets the credentials from the environment; the stock registry
# (no auth) answers /v2/ with 200 and never asks for them.
BENCH_USER=bench
BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
BENCH_HASH=
if [[ -n ${SLIPWAY_BIN:-} ]]; then
	BENCH_HASH=$(printf '%s' "$BENCH_PASSWORD" | "$SLIPWAY_BIN" passwd --cost 10) || die "slipway passwd failed"
fi
export REGBENCH_USER=$BENCH_USER REGBENCH_PASSWORD=$BENCH_PASSWORD

# --- start the registries ----------------------------------------------------

start() {
	local r=$1 port cfg code data=$RUN_DIR/$1-data
	mkdir -p "$data"
	cfg=$RUN_DIR/$r.yml
	case $r in
	slipway)
		port=$SLIPWAY_PORT
		cat >"$cfg" <<-EOF
			http:
			  addr: "127.0.0.1:$port"
			storage:
			  filesystem:
			    root: "$data"
			log:
			  level: warn
			auth:
			  signing_key: "$RUN_DIR/slipway-token.pem"
			  users:
			    - name: "$BENCH_USER"
			      password_hash: "$BENCH_HASH"
			      admin: true
		EOF
		;;
	stock)
		port=$STOCK_PORT
		# The upstream image's defaults (in-memory blob descriptor cache),
		# with logging turned down and the access log off.
		cat >"$cfg" <<-EOF
			version: 0.1
			log:
			  level: error
			  accesslog:
			    disabled: true
			storage:
			  cache:
			    blobdescriptor: inmemory
			  filesystem:
			    rootdirectory: "$data"
			http:
			  addr: "127.0.0.1:$port"
		EOF
		;;
	esac
	port_free "$port" || die "port $port is already in use (set ${r^^}_PORT)"
	if [[ $r == slipway ]]; then
		# Only the config file configures it: drop SLIPWAY_* overrides.
		local unset_env=()
		for v in $(compgen -e); do [[ $v == SLIPWAY_* ]] && unset_env+=(-u "$v"); done
		env "${unset_env[@]}" "$SLIPWAY_BIN" serve --config "$cfg" >>"$RUN_DIR/$r.log" 2>&1 &
	else
		"$STOCK_EXE" serve "$cfg" >>"$RUN_DIR/$r.log" 2>&1 &
	fi
	PID[$r]=$!
	URL[$r]=http://127.0.0.1:$port
	local i
	for ((i = 0; i < 150; i++)); do
		# 200, or 401 with a token challenge (Slipway's auth is on)
		code=$(curl -sS -o /dev/null -w '%{http_code}' "${URL[$r]}/v2/" 2>/dev/null || true)
		if [[ $code == 200 || $code == 401 ]]; then
			log "$r serving at ${URL[$r]} (pid ${PID[$r]}, data $data)"
			return 0
		fi
		kill -0 "${PID[$r]}" 2>/dev/null || break
		sleep 0.2
	done
	tail -20 "$RUN_DIR/$r.log" >&2 || true
	die "$r did not answer 200 or 401 on ${URL[$r]}/v2/"
}
for r in "${REGS[@]}"; do start "$r"; done

# --- page cache ----------------------------------------------------------------
CAN_DROP=0
if [[ $DROP == 1 ]]; then
	sync
	if (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
		CAN_DROP=1
	else
		log "WARNING: cannot write /proc/sys/vm/drop_caches (not root?): measuring with a warm page cache"
	fi
fi
BG=0
prep() {
	sync
	if [[ $CAN_DROP == 1 ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
	sleep "$SLEEP"
	# Wait (up to QUIET_MAX s) for other work on the machine to calm down.
	local waited=0
	BG=$(busy_pct)
	while ((BG > QUIET_PCT && waited < QUIET_MAX)); do
		((waited == 0)) && log "machine busy (${BG}% CPU before any request): waiting up to ${QUIET_MAX}s"
		BG=$(busy_pct)
		waited=$((waited + 1))
	done
	((BG <= QUIET_PCT)) || log "WARNING: still ${BG}% CPU busy: measuring anyway (flagged in the results)"
}

# --- machine facts -------------------------------------------------------------
disk_dev=$(df --output=source "$BENCH_DIR" | tail -1)
disk_name=$(basename "$(readlink -f "$disk_dev")")
rot=$(cat "/sys/block/$disk_name/queue/rotational" 2>/dev/null || echo "?")
disk_model=$(xargs 2>/dev/null <"/sys/block/$disk_name/device/model" || true)
mem_gib=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
cpu_model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
slipway_rev=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -n $(cd "$REPO" && git status --porcelain 2>/dev/null | grep -v '^?? bench/results' | head -1) ]] && slipway_rev="$slipway_rev + uncommitted changes"
machine() {
	echo "- Command: \`$COMMAND\` (alternating order, median of $REPS)"
	echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- CPU: $(nproc) × $cpu_model"
	echo "- Memory: $mem_gib"
	echo "- Kernel: $(uname -srm)"
	echo "- Disk: $disk_dev${disk_model:+ ($disk_model)}, $(findmnt -n -o FSTYPE -T "$BENCH_DIR" 2>/dev/null || echo "$fstype"), $(df -h --output=size "$BENCH_DIR" | tail -1 | xargs), rotational=$rot; both registries' data dirs under $BENCH_DIR"
	echo "- Page cache: $([[ $CAN_DROP == 1 ]] && echo "sync + drop_caches + ${SLEEP}s sleep before every timed run" || echo "sync + ${SLEEP}s sleep, NOT dropped")"
	local stock="not run" slip="not run"
	[[ -n ${STOCK_BIN:-} ]] && stock="$("$STOCK_BIN" --version 2>&1 | awk '{print $NF}') ($STOCK_BIN)"
	[[ -n ${SLIPWAY_BIN:-} ]] && slip="$slipway_rev ($SLIPWAY_BIN)"
	echo "- Go: $(go version | awk '{print $3}'); stock registry: $stock; Slipway: $slip"
}
machine | sed 's/^/# /' >>"$RESULTS"

# --- measure --------------------------------------------------------------------
read -r -a SCS <<<"$SCENARIOS"
total=$((${#SCS[@]} * REPS * ${#REGS[@]}))
n=0
failures=0
started=$SECONDS

fail_line() { # registry scenario rep message: a JSON line for a run regbench could not report
	printf '{"registry":"%s","rep":%d,"scenario":"%s","phase":"run","error":"%s","time":"%s","url":"%s"}\n' \
		"$1" "$3" "$2" "$4" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${URL[$1]}" >>"$RESULTS"
}

measure() {
	local r=$1 sc=$2 rep=$3 out rc state=$RUN_DIR/state-$1
	n=$((n + 1))
	if ! kill -0 "${PID[$r]}" 2>/dev/null; then
		wait "${PID[$r]}" 2>/dev/null && rc=0 || rc=$?
		log "$r (pid ${PID[$r]}) has exited with status $rc (see ${RESULTS%.jsonl}.$r.log): restarting it on the same data"
		printf '# %s restarted before %s rep %d: exit status %d\n' "$r" "$sc" "$rep" "$rc" >>"$RESULTS"
		start "$r"
	fi
	local args=(-url "${URL[$r]}" -scenario "$sc" -state "$state" -label "$r" -rep "$rep" -duration "$DURATION")
	# shellcheck disable=SC2086
	if ! out=$(timeout 900 "$RB" "${args[@]}" -phase setup $REGBENCH_FLAGS 2>>"$CLIENT_LOG"); then
		failures=$((failures + 1))
		printf '%s\n' "$out" >>"$RESULTS"
		log "[$n/$total] $sc rep $rep $r: setup FAILED: $(tail -1 "$CLIENT_LOG")"
		return
	fi
	prep
	rc=0
	# shellcheck disable=SC2086
	out=$(timeout 900 "$RB" "${args[@]}" -phase run -bg-busy-pct "$BG" -server-pid "${PID[$r]}" $REGBENCH_FLAGS 2>>"$CLIENT_LOG") || rc=$?
	if [[ -n $out ]]; then
		printf '%s\n' "$out" >>"$RESULTS"
	elif ((rc != 0)); then
		fail_line "$r" "$sc" "$rep" "regbench exited $rc with no result (timeout?)"
	fi
	if ((rc != 0)); then
		failures=$((failures + 1))
		log "[$n/$total] $sc rep $rep $r: FAILED: $(tail -1 "$CLIENT_LOG")"
		return
	fi
	local value metric
	value=$(sed -n 's/.*"value":\([0-9.e+-]*\).*/\1/p' <<<"$out")
	metric=$(sed -n 's/.*"metric":"\([^"]*\)".*/\1/p' <<<"$out")
	log "[$n/$total] $sc rep $rep $r: $(printf '%.3f' "$value") $metric"
}

for i in "${!SCS[@]}"; do
	sc=${SCS[$i]}
	for ((rep = 1; rep <= REPS; rep++)); do
		# Alternate who goes first across repetitions and scenarios.
		if (((rep + i) % 2 == 1)); then
			order=("${REGS[@]}")
		else
			order=()
			for ((j = ${#REGS[@]} - 1; j >= 0; j--)); do order+=("${REGS[$j]}"); done
		fi
		for r in "${order[@]}"; do measure "$r" "$sc" "$rep"; done
	done
done
log "measured $total runs in $((SECONDS - started)) s, $failures failed; raw results: $RESULTS"

# --- report ---------------------------------------------------------------------
{
	echo "### Slipway vs stock distribution $STOCK_VERSION"
	echo
	machine
	echo
	"$RB" -summarize "$RESULTS"
} | tee "${RESULTS%.jsonl}.md"

((failures == 0)) || exit 1
