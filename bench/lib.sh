# bench/lib.sh — helpers shared by the bench scripts (sourced, not run).

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "FATAL: $*"
	exit 2
}

# Knobs every script shares (each script documents them).
: "${BENCH_DIR:=/work/slipway-bench}" "${QUIET_PCT:=10}" "${KEEP:=0}" "${MINIO_BIN:=/root/go/bin/minio}"

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

# wait_quiet: wait up to QUIET_MAX s until other processes use at most
# QUIET_PCT % of the CPUs. BG is the last reading (each result records it).
wait_quiet() {
	local waited=0
	BG=$(busy_pct)
	while ((BG > QUIET_PCT && waited < QUIET_MAX)); do
		((waited == 0)) && log "machine busy (${BG}% CPU): waiting up to ${QUIET_MAX}s"
		BG=$(busy_pct)
		waited=$((waited + 1))
	done
	((BG <= QUIET_PCT)) || log "WARNING: still ${BG}% CPU busy: measuring anyway (flagged in the results)"
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

# build_bench [TOOL...]: regbench as $RB, each TOOL (a command of the bench
# module: s3count, floor) as RUN_DIR/TOOL, and bin/slipway as SLIPWAY_BIN
# unless it is set.
build_bench() {
	RB=$RUN_DIR/regbench
	log "building regbench $* and slipway"
	(cd "$REPO/bench" && go build -o "$RB" ./regbench) || die "regbench does not build"
	local tool
	for tool in "$@"; do
		(cd "$REPO/bench" && go build -o "$RUN_DIR/$tool" "./$tool") || die "$tool does not build"
	done
	if [[ -z ${SLIPWAY_BIN:-} ]]; then
		(cd "$REPO" && go build -o bin/slipway ./cmd/slipway) || die "Slipway does not build"
		SLIPWAY_BIN=$REPO/bin/slipway
	fi
}

# wait_http NAME URL CODES...: wait until URL answers one of CODES while
# the process PID[NAME] lives; die with its log's tail otherwise.
wait_http() {
	local name=$1 url=$2 i code c
	shift 2
	for ((i = 0; i < 150; i++)); do
		code=$(curl -sS -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)
		for c in "$@"; do [[ $code == "$c" ]] && return 0; done
		kill -0 "${PID[$name]}" 2>/dev/null || break
		sleep 0.2
	done
	tail -20 "$RUN_DIR/$name.log" >&2 || true
	die "$name did not answer $* on $url (last: $code)"
}

# start_minio: MinIO on 127.0.0.1:BASE_PORT+50 (console +51) with its data
# in RUN_DIR, root credentials MINIO_ROOT_USER / a random
# MINIO_ROOT_PASSWORD (exported); sets MINIO_EP. It returns once a signed
# S3 call works: the health endpoints answer 200 before the object layer
# is up, while S3 calls still get "Server not initialized yet".
start_minio() {
	local port=$((BASE_PORT + 50)) i
	MINIO_EP=127.0.0.1:$port
	port_free "$port" || die "port $port in use (set BASE_PORT)"
	port_free $((port + 1)) || die "port $((port + 1)) in use (set BASE_PORT)"
	export MINIO_ROOT_USER=benchadmin
	MINIO_ROOT_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	export MINIO_ROOT_PASSWORD
	mkdir -p "$RUN_DIR/minio-data"
	"$MINIO_BIN" server --quiet --address "$MINIO_EP" --console-address "127.0.0.1:$((port + 1))" "$RUN_DIR/minio-data" >>"$RUN_DIR/minio.log" 2>&1 &
	PID[minio]=$!
	wait_http minio "http://$MINIO_EP/minio/health/ready" 200
	for ((i = 0; i < 150; i++)); do
		"$RB" -scenario raw-push-16m -phase setup -state "$RUN_DIR/mkbucket" -s3-endpoint "$MINIO_EP" -s3-bucket minio-ready >/dev/null 2>&1 && break
		kill -0 "${PID[minio]}" 2>/dev/null || die "MinIO exited: $(tail -5 "$RUN_DIR/minio.log")"
		sleep 0.2
	done
	((i < 150)) || die "MinIO at $MINIO_EP never accepted an S3 call"
	log "MinIO at $MINIO_EP (pid ${PID[minio]}, data $RUN_DIR/minio-data)"
}

# bench_credentials: an admin user "bench" with a random password for this
# run (bcrypt cost 10, hashed by `slipway passwd` when SLIPWAY_BIN is set);
# regbench takes them from the environment.
bench_credentials() {
	BENCH_USER=bench
	BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	BENCH_HASH=
	if [[ -n ${SLIPWAY_BIN:-} ]]; then
		BENCH_HASH=$(printf '%s' "$BENCH_PASSWORD" | "$SLIPWAY_BIN" passwd --cost 10) || die "slipway passwd failed"
	fi
	export REGBENCH_USER=$BENCH_USER REGBENCH_PASSWORD=$BENCH_PASSWORD
}

# slipway_auth_yaml: Slipway's auth section for the bench user, with the
# run's own token signing key (generated on first start) in RUN_DIR; and
# the user's upload session rate lifted: regbench pushes as this one
# account at loopback speed (push-256k starts ~700 sessions a second),
# far beyond the per-account rate meant for real clients.
slipway_auth_yaml() {
	cat <<-EOF
		uploads:
		  session_rate_per_account: 0
		auth:
		  signing_key: "$RUN_DIR/slipway-token.pem"
		  users:
		    - name: "$BENCH_USER"
		      password_hash: "$BENCH_HASH"
		      admin: true
	EOF
}

# alternate_order REP I ITEMS...: ORDER is ITEMS, reversed every other
# repetition (and row), so no system always goes first.
alternate_order() {
	local rep=$1 i=$2 j
	shift 2
	ORDER=("$@")
	if (((rep + i) % 2 == 0)); then
		ORDER=()
		for ((j = $#; j >= 1; j--)); do ORDER+=("${!j}"); done
	fi
}

# require_numbers VAR...: each named variable holds a whole number.
require_numbers() {
	local v
	for v in "$@"; do
		[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
	done
}

# cpu_facts: the "CPU: …" line of a run's machine facts.
cpu_facts() {
	echo "CPU: $(nproc) × $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); memory $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel $(uname -sr)"
}

# started NAME PORT CODES...: the process just started in the background
# ($!) is PID[NAME], serving http://127.0.0.1:PORT as URL[NAME]; returns
# once its /v2/ answers one of CODES (dies otherwise, see wait_http).
started() {
	local name=$1 port=$2
	shift 2
	PID[$name]=$!
	URL[$name]=http://127.0.0.1:$port
	wait_http "$name" "${URL[$name]}/v2/" "$@"
}

# stop NAME: end the process PID[NAME] this run started and forget it.
stop() {
	kill "${PID[$1]}" 2>/dev/null || true
	wait "${PID[$1]}" 2>/dev/null || true
	unset "PID[$1]"
}

# prep: before a timed run, written data on disk, the page cache dropped
# (DROP=1), SLEEP seconds, and a quiet machine (sets BG).
prep() {
	sync
	[[ ${DROP:-0} == 1 ]] && { echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || log "WARNING: cannot drop caches"; }
	sleep "$SLEEP"
	wait_quiet
}

# s3_facts: the machine-facts lines of the scripts comparing Slipway with
# the stock registry on MinIO (needs STOCK_BIN, SLIPWAY_GIVEN: the binary
# the caller gave, empty when built from this tree).
s3_facts() {
	local disk_dev
	disk_dev=$(df --output=source "$BENCH_DIR" | tail -1)
	echo "- MinIO: $("$MINIO_BIN" --version 2>&1 | head -1) ($MINIO_BIN), one drive: $RUN_DIR/minio-data on $disk_dev ($(findmnt -n -o FSTYPE -T "$BENCH_DIR"))"
	echo "- Page cache: $([[ ${DROP:-0} == 1 ]] && echo "sync + drop_caches + ${SLEEP}s sleep before every timed run" || echo "not dropped")"
	echo "- Go: $(go version | awk '{print $3}'); stock: $("$STOCK_BIN" --version 2>&1 | awk '{print $NF}'); Slipway: $(if [[ -n $SLIPWAY_GIVEN ]]; then echo "$SLIPWAY_GIVEN (given, not this tree)"; else echo "$(cd "$REPO" && git rev-parse --short HEAD) ($(cd "$REPO" && git status --porcelain | grep -qv '^?? bench' && echo "+ uncommitted changes" || echo clean))"; fi)"
}

# slipway_s3_yaml PORT S3ENDPOINT REDIRECT: a bench Slipway's configuration
# on the bench MinIO's bucket "slipway" (token auth as slipway_auth_yaml);
# callers append sections of their own.
slipway_s3_yaml() {
	cat <<-EOF
		http:
		  addr: "127.0.0.1:$1"
		storage:
		  s3:
		    endpoint: "http://$2"
		    bucket: slipway
		    region: us-east-1
		    access_key: "$MINIO_ROOT_USER"
		    secret_key: "$MINIO_ROOT_PASSWORD"
		    create_bucket: true
		    redirect: $3
		log:
		  level: warn
		$(slipway_auth_yaml)
	EOF
}

# stock_config PORT STORAGE: the stock registry's configuration serving
# 127.0.0.1:PORT with the upstream image's defaults (in-memory blob
# descriptor cache), logging turned down and the access log off; STORAGE is
# the rest of its storage section, indented two spaces (stock_s3_storage).
stock_config() {
	cat <<-EOF
		version: 0.1
		log:
		  level: error
		  accesslog:
		    disabled: true
		storage:
		  cache:
		    blobdescriptor: inmemory
		$2
		http:
		  addr: "127.0.0.1:$1"
	EOF
}

# stock_s3_storage S3ENDPOINT BUCKET [ROOTDIRECTORY]: the stock registry's
# storage.s3 on the bench MinIO (for stock_config).
stock_s3_storage() {
	cat <<-EOF
		  s3:
		    accesskey: "$MINIO_ROOT_USER"
		    secretkey: "$MINIO_ROOT_PASSWORD"
		    region: us-east-1
		    regionendpoint: "http://$1"
		    bucket: $2${3:+
		    rootdirectory: \"$3\"}
		    secure: false
		    v4auth: true
		    forcepathstyle: true
	EOF
}

# start_s3count: bench/s3count (built by build_bench s3count), a counting
# reverse proxy, in front of MinIO at PROXY_EP (BASE_PORT+61), its counts
# at http://PROXY_CTL/take (BASE_PORT+71).
start_s3count() {
	PROXY_EP=127.0.0.1:$((BASE_PORT + 61))
	PROXY_CTL=127.0.0.1:$((BASE_PORT + 71))
	port_free $((BASE_PORT + 61)) && port_free $((BASE_PORT + 71)) || die "proxy ports in use (set BASE_PORT)"
	"$RUN_DIR/s3count" -listen "$PROXY_EP" -target "http://$MINIO_EP" -control "$PROXY_CTL" >>"$RUN_DIR/s3count.log" 2>&1 &
	PID[s3count]=$!
	wait_http s3count "http://$PROXY_CTL/take" 200
}

# record_result WHAT OUT RC [STEP]: append regbench's JSON line OUT to
# RESULTS and log it as WHAT; RC other than 0 counts a failure (of STEP:
# setup, or the timed run by default) in $failures.
record_result() {
	local what=$1 out=$2 rc=$3 step=${4:-}
	printf '%s\n' "$out" >>"$RESULTS"
	if ((rc != 0)); then
		failures=$((failures + 1))
		log "$what: ${step:+$step }FAILED: $(tail -1 "$CLIENT_LOG")"
		return 0
	fi
	log "$what: $(sed -n 's/.*"value":\([0-9.e+-]*\).*/\1/p' <<<"$out") $(sed -n 's/.*"metric":"\([^"]*\)".*/\1/p' <<<"$out") (p99 $(sed -n 's/.*"p99_ms":\([0-9.e+-]*\).*/\1/p' <<<"$out") ms, bg ${BG}%)"
}
