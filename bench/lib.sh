# bench/lib.sh — helpers shared by the bench scripts (sourced, not run).

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "FATAL: $*"
	exit 2
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# busy_pct: percent of all CPUs busy over the next second (other load on
# the machine: the registries are idle while this runs).
busy_pct() {
	local a b
	read -r -a a </proc/stat
	sleep 1
	read -r -a b </proc/stat
	local busy=$(((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8])))
	local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
	echo $((100 * busy / (busy + idle > 0 ? busy + idle : 1)))
}

# start_run NAME: a fresh RUN_DIR under BENCH_DIR (a real disk: tmpfs is
# refused), an empty RESULTS file, CLIENT_LOG, the PID and URL maps of the
# processes started, and a trap that stops them and keeps their logs
# beside RESULTS (KEEP=1 keeps RUN_DIR instead).
start_run() {
	mkdir -p "$BENCH_DIR"
	BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
	local fstype
	fstype=$(stat -f -c %T "$BENCH_DIR")
	case $fstype in tmpfs | ramfs) die "$BENCH_DIR is on $fstype: benchmark a real disk (set BENCH_DIR)" ;; esac
	RUN_DIR=$(mktemp -d "$BENCH_DIR/$1.XXXXXX")
	mkdir -p "$(dirname "$RESULTS")"
	: >"$RESULTS"
	CLIENT_LOG=$RUN_DIR/regbench.log
	declare -gA PID URL
	trap stop_run EXIT
	trap 'exit 130' INT TERM
}

stop_run() {
	local k f
	for k in "${!PID[@]}"; do kill "${PID[$k]}" 2>/dev/null || true; done
	for k in "${!PID[@]}"; do wait "${PID[$k]}" 2>/dev/null || true; done
	if [[ $KEEP == 1 ]]; then
		log "kept $RUN_DIR"
	else
		# keep the logs beside the results, drop the data
		for f in "$RUN_DIR"/*.log; do [[ -s $f ]] && cp "$f" "${RESULTS%.jsonl}.$(basename "$f")"; done
		rm -rf "$RUN_DIR"
	fi
}

# build_bench [s3count]: regbench as $RB (and s3count in RUN_DIR), and
# bin/slipway as SLIPWAY_BIN unless it is set.
build_bench() {
	RB=$RUN_DIR/regbench
	log "building regbench $* and slipway"
	(cd "$REPO/bench" && go build -o "$RB" ./regbench) || die "regbench does not build"
	if [[ ${1:-} == s3count ]]; then
		(cd "$REPO/bench" && go build -o "$RUN_DIR/s3count" ./s3count) || die "s3count does not build"
	fi
	if [[ -z ${SLIPWAY_BIN:-} ]]; then
		(cd "$REPO" && go build -o bin/slipway ./cmd/slipway) || die "Slipway does not build"
		SLIPWAY_BIN=$REPO/bin/slipway
	fi
}
