#!/usr/bin/env bash
# bench/run-import.sh — `slipway import` of a stock registry's S3 storage
# (issue 14) vs copying the same content through both registries' APIs
# (`crane copy`, tag by tag). See BENCHMARKS.md ("Import").
#
# One MinIO (/root/go/bin/minio or $MINIO_BIN) with its data dir under
# BENCH_DIR (a real disk, not tmpfs). The stock distribution registry
# v3.1.2 (storage.s3, bucket "stock", rootdirectory /$STOCK_ROOT) is filled
# through its API by bench/importpopulate.py (untimed): REPOS repositories ×
# TAGS tags × LAYERS layers of LAYER_KB KiB on average (random, every layer
# its own bytes) plus a config per tag; defaults 200 × 3 × 5 × 700 KiB ≈ 2 GiB.
#
# Cases (CASES), each with a fresh destination per run:
#   same   Slipway in the stock bucket under storage.s3.root imp-same-REP
#          (api-same-REP for the API copy): the import references the stock
#          data objects (no byte moves)
#   other  Slipway in its own bucket imp-other-REP (api-other-REP): the
#          import copies server-side (CopyObject), no byte through it
# For each rep (REPS) and case, in alternating order:
#   import    `slipway import --from s3://stock/STOCK_ROOT --from-endpoint
#             http://PROXY --config …` under /usr/bin/time (wall, CPU, peak
#             RSS), Slipway's storage.s3.endpoint the same PROXY: bench/s3count,
#             a counting reverse proxy in front of MinIO, so every S3 request of
#             the import is counted (by kind; source and destination must be
#             one endpoint for a server-side copy, so both go through it). Its
#             JSON summary (stdout) is kept in the result line.
#   api-copy  a Slipway server on the same destination (talking to MinIO
#             directly, as the stock registry does: the proxy would only slow
#             the bytes of this side), then `crane copy stock/R:T slipway/R:T`
#             for every tag, API_JOBS crane processes at a time; wall time.
# Before each timed run: sync, drop_caches (DROP=1), sleep SLEEP, a quiet
# machine (lib.sh prep). With VERIFY=1, after the first import of each case
# a Slipway server on its destination is asked for every tag (crane digest:
# the stock manifest digest) and one layer per repository (crane blob,
# rehashed). The stock objects under docker/ are listed (key, size, ETag)
# before the first and after the last run: they must not change.
# The summary (bench/importsummary.py): median API-copy and import times
# per case, their ratio (targets: same ≥ 50×, other ≥ 5×) and the S3
# requests per imported blob.
#
# Knobs: REPOS=200 TAGS=3 LAYERS=5 LAYER_KB=700 REPS=3 CASES="same other"
#   API_JOBS=4 POP_WORKERS=4 VERIFY=1 SEED=1 STOCK_ROOT=registry SLEEP=5 DROP=1
#   IMPORT_FLAGS (extra flags for slipway import; --mode=copy: a same-bucket
#     import copies server-side instead of referencing)
#   QUIET_PCT=10 QUIET_MAX=20 SLIPWAY_BIN STOCK_BIN CRANE_BIN MINIO_BIN KEEP=0 RESULTS
#   BASE_PORT=5700 (Slipway +1, verify Slipway +2, stock +3, MinIO +50/+51, proxy +61/+71)
# SMALL=1: a smoke run (~2 min): defaults REPOS=4 TAGS=2 LAYERS=2 LAYER_KB=64
#   REPS=1 SLEEP=0 DROP=0 QUIET_MAX=0 (any knob set explicitly still wins).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ ${SMALL:-0} == 1 ]]; then
	: "${REPOS:=4}" "${TAGS:=2}" "${LAYERS:=2}" "${LAYER_KB:=64}" "${REPS:=1}" "${SLEEP:=0}" "${DROP:=0}" "${QUIET_MAX:=0}"
fi
: "${REPOS:=200}" "${TAGS:=3}" "${LAYERS:=5}" "${LAYER_KB:=700}" "${REPS:=3}" "${CASES:=same other}"
: "${API_JOBS:=4}" "${POP_WORKERS:=4}" "${VERIFY:=1}" "${SEED:=1}" "${STOCK_ROOT:=registry}"
: "${SLEEP:=5}" "${DROP:=1}" "${QUIET_MAX:=20}" "${BASE_PORT:=5700}" "${IMPORT_FLAGS:=}"
STOCK_VERSION=v3.1.2
CRANE_VERSION=v0.22.1
RESULTS=${RESULTS:-$REPO/bench/results/import-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
COMMAND="REPOS=$REPOS TAGS=$TAGS LAYERS=$LAYERS LAYER_KB=$LAYER_KB REPS=$REPS CASES='$CASES' API_JOBS=$API_JOBS SLEEP=$SLEEP DROP=$DROP${IMPORT_FLAGS:+ IMPORT_FLAGS='$IMPORT_FLAGS'} bench/run-import.sh"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_numbers REPOS TAGS LAYERS LAYER_KB REPS API_JOBS POP_WORKERS SEED SLEEP BASE_PORT QUIET_MAX
for c in $CASES; do [[ $c == same || $c == other ]] || die "unknown case $c (CASES: same other)"; done
[[ $STOCK_ROOT =~ ^[a-z0-9][a-z0-9._/-]*$ ]] || die "STOCK_ROOT must be a plain key prefix, got '$STOCK_ROOT'"
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is needed for the import's wall time, CPU and peak RSS"
for tool in jq python3 curl sha256sum; do command -v "$tool" >/dev/null || die "$tool is needed"; done

start_run importrun

# --- build ------------------------------------------------------------------------
SLIPWAY_GIVEN=${SLIPWAY_BIN:-}
build_bench s3count
"$SLIPWAY_BIN" import --help >/dev/null 2>&1 || die "'$SLIPWAY_BIN import --help' fails: this build has no import command"
STOCK_BIN=${STOCK_BIN:-$(go env GOPATH)/bin/registry}
if [[ ! -x $STOCK_BIN ]]; then
	go install "github.com/distribution/distribution/v3/cmd/registry@$STOCK_VERSION"
	STOCK_BIN=$(go env GOPATH)/bin/registry
fi
CRANE_BIN=${CRANE_BIN:-$(go env GOPATH)/bin/crane}
if [[ ! -x $CRANE_BIN ]]; then
	go install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
	CRANE_BIN=$(go env GOPATH)/bin/crane
fi
[[ -x $MINIO_BIN ]] || die "no MinIO at $MINIO_BIN"

# Room for the stock copy and, per rep, the API copies of both cases and
# the server-side copy: (1 + 3 × REPS) × the content, plus a margin.
need_kib=$(((1 + 3 * REPS) * REPOS * TAGS * LAYERS * LAYER_KB * 12 / 10))
free_kib=$(df --output=avail -k "$BENCH_DIR" | tail -1)
((free_kib > need_kib)) || die "$BENCH_DIR has $((free_kib / 1048576)) GiB free, this run needs about $((need_kib / 1048576)) GiB"

bench_credentials
export DOCKER_CONFIG=$RUN_DIR/docker # crane's logins: this run's own
mkdir -p "$DOCKER_CONFIG"
start_minio
mkbucket() {
	"$RB" -scenario raw-push-16m -phase setup -state "$RUN_DIR/mkbucket" -s3-endpoint "$MINIO_EP" -s3-bucket "$1" 2>>"$CLIENT_LOG" >/dev/null ||
		die "cannot create bucket $1"
}
mkbucket stock

start_s3count # the import's S3 endpoint, PROXY_EP

# --- configurations -----------------------------------------------------------------------
# slipway_yaml PORT S3ENDPOINT BUCKET ROOT: lib.sh's configuration on BUCKET
# under storage.s3.root ROOT.
slipway_yaml() {
	slipway_s3_yaml "$1" "$2" true | sed "s|^\( *\)bucket: slipway\$|\1bucket: $3\n\1root: \"$4\"|"
}
declare -A PORT=([slipway]=$((BASE_PORT + 1)) [verify]=$((BASE_PORT + 2)) [stock]=$((BASE_PORT + 3)))
stock_config "${PORT[stock]}" "$(stock_s3_storage "$MINIO_EP" stock "/$STOCK_ROOT")" >"$RUN_DIR/stock.yml"

# Slipway and stock read no environment overrides of ours.
UNSET_ENV=()
for v in $(compgen -e); do [[ $v == SLIPWAY_* || $v == AWS_* || $v == REGISTRY_* ]] && UNSET_ENV+=(-u "$v"); done
# start NAME CONFIG: a registry process (stock, or a Slipway server on CONFIG)
start() {
	local name=$1 cfg=${2:-} port=${PORT[$1]}
	port_free "$port" || die "port $port in use (set BASE_PORT)"
	case $name in
	stock)
		env "${UNSET_ENV[@]}" OTEL_TRACES_EXPORTER=none "$STOCK_BIN" serve "$RUN_DIR/stock.yml" >>"$RUN_DIR/stock.log" 2>&1 &
		started stock "$port" 200
		;;
	*)
		env "${UNSET_ENV[@]}" "$SLIPWAY_BIN" serve --config "$cfg" >>"$RUN_DIR/$name.log" 2>&1 &
		started "$name" "$port" 401
		printf '%s' "$BENCH_PASSWORD" | "$CRANE_BIN" auth login "127.0.0.1:$port" -u "$BENCH_USER" --password-stdin >>"$CLIENT_LOG" 2>&1 ||
			die "crane auth login 127.0.0.1:$port failed"
		;;
	esac
	log "$name at ${URL[$name]} (pid ${PID[$name]})"
}

# --- machine facts ------------------------------------------------------------------------
machine() {
	echo "- Command: \`$COMMAND\` (median of $REPS, import and API copy alternating)"
	echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "- $(cpu_facts)"
	echo "- crane: $("$CRANE_BIN" version 2>&1) ($CRANE_BIN), $API_JOBS \`crane copy\` processes at a time"
	s3_facts
}
machine | sed 's/^/# /' >>"$RESULTS"

BG=0
failures=0
# fail WHAT: count a failure and log it.
fail() {
	failures=$((failures + 1))
	log "$1 FAILED"
}

# --- population ------------------------------------------------------------------------------
start stock
POP=$RUN_DIR/population.json
log "populating the stock registry: $REPOS repositories × $TAGS tags × $LAYERS layers of ~$LAYER_KB KiB"
t0=$(date +%s.%N)
python3 "$REPO/bench/importpopulate.py" "${URL[stock]}" "$POP" "$REPOS" "$TAGS" "$LAYERS" "$LAYER_KB" "$POP_WORKERS" "$SEED" >>"$CLIENT_LOG" 2>&1 ||
	die "populating the stock registry failed: $(tail -3 "$CLIENT_LOG")"
t1=$(date +%s.%N)
jq -c --argjson s "$(jq -n "$t1 - $t0")" '{scenario: "populate", registry: "stock", metric: "s", value: $s, seconds: $s, time: (now | todate),
	extra: {repos, tags: (.tags | length), blobs, manifests, bytes}}' "$POP" >>"$RESULTS"
log "populated: $(jq -r '"\(.tags | length) tags, \(.blobs) blobs, \(.bytes / 1048576 | floor) MiB"' "$POP") in $(jq -n "$t1 - $t0 | floor") s"
jq -r '.tags[] | "\(.[0]):\(.[1])"' "$POP" >"$RUN_DIR/refs"

# stock_listing WHEN: the stock layout's objects (key, size, ETag), as a
# count and a hash in a result line.
stock_listing() {
	local out=$RUN_DIR/stock-$1.txt
	AWS_ACCESS_KEY_ID=$MINIO_ROOT_USER AWS_SECRET_ACCESS_KEY=$MINIO_ROOT_PASSWORD AWS_DEFAULT_REGION=us-east-1 \
		aws --endpoint-url "http://$MINIO_EP" s3api list-objects-v2 --bucket stock --prefix "$STOCK_ROOT/docker/" \
		--query 'Contents[].[Key, Size, ETag]' --output text >"$out" 2>>"$CLIENT_LOG" || {
		fail "listing the stock bucket ($1)"
		return 0
	}
	jq -cn --arg when "$1" --argjson n "$(wc -l <"$out")" --arg sha "$(sha256sum <"$out" | cut -c1-16)" \
		'{scenario: "stock-listing", registry: "stock", metric: "objects", value: $n, time: (now | todate), extra: {when: $when, sha256: $sha}}' >>"$RESULTS"
}
stock_listing before

# --- runs -------------------------------------------------------------------------------------
# dest CASE KIND REP: the destination's bucket and root (sets BUCKET ROOT)
dest() {
	case $1 in
	same) BUCKET=stock ROOT=$2-same-$3 ;;
	other) BUCKET=$2-other-$3 ROOT= ;;
	esac
}

# run_import CASE REP: one timed import through the proxy; an "import" line.
run_import() {
	local c=$1 rep=$2 rc=0 tf=$RUN_DIR/time-import-$1-$2 out=$RUN_DIR/import-$1-$2.json take=$RUN_DIR/take-import-$1-$2.json cfg
	dest "$c" imp "$rep"
	[[ $BUCKET == stock ]] || mkbucket "$BUCKET"
	cfg=$RUN_DIR/imp-$c-$rep.yml
	slipway_yaml "${PORT[slipway]}" "$PROXY_EP" "$BUCKET" "$ROOT" >"$cfg"
	prep
	curl -sS "http://$PROXY_CTL/take" >/dev/null
	# shellcheck disable=SC2086 # IMPORT_FLAGS: words
	env "${UNSET_ENV[@]}" AWS_ACCESS_KEY_ID="$MINIO_ROOT_USER" AWS_SECRET_ACCESS_KEY="$MINIO_ROOT_PASSWORD" AWS_REGION=us-east-1 \
		/usr/bin/time -f '%e %U %S %M' -o "$tf" "$SLIPWAY_BIN" import --from "s3://stock/$STOCK_ROOT" --from-endpoint "http://$PROXY_EP" \
		--config "$cfg" $IMPORT_FLAGS >"$out" 2>"$RUN_DIR/import-$c-$rep.log" || rc=$?
	curl -sS "http://$PROXY_CTL/take" | jq -c '{total, counts}' >"$take"
	local wall user sys_s rss
	read -r wall user sys_s rss < <(tail -1 "$tf")
	jq -e . "$out" >/dev/null 2>&1 || echo null >"$out"
	jq -cn --arg case "$c" --argjson rep "$rep" --argjson rc "$rc" --argjson wall "$wall" --argjson user "$user" --argjson syst "$sys_s" \
		--argjson rss "$rss" --argjson bg "$BG" --slurpfile s3 "$take" --slurpfile summary "$out" --arg tail "$(tail -3 "$RUN_DIR/import-$c-$rep.log")" \
		'{registry: "slipway-import", scenario: "import", case: $case, rep: $rep, metric: "s", value: $wall, seconds: $wall,
		background_busy_pct: $bg, time: (now | todate),
		extra: {s3: $s3[0], summary: $summary[0], user_s: $user, sys_s: $syst, peak_rss_kib: $rss, exit: $rc, stderr_tail: $tail}}
		+ (if $rc != 0 then {error: ("exit " + ($rc | tostring))} else {} end)' >>"$RESULTS"
	if ((rc != 0)); then
		fail "import ($c, rep $rep, exit $rc: $(tail -2 "$RUN_DIR/import-$c-$rep.log"))"
		return 0
	fi
	log "import ($c, rep $rep): ${wall}s wall, $(jq .total "$take") S3 requests, peak RSS $((rss / 1024)) MiB (bg ${BG}%)"
	if [[ $VERIFY == 1 && $rep == 1 ]]; then verify "$c" "$cfg"; fi
}

# run_api CASE REP: a Slipway server on a fresh destination, then every tag
# copied from the stock registry with crane; an "api-copy" line.
run_api() {
	local c=$1 rep=$2 rc=0 cfg t0 t1
	dest "$c" api "$rep"
	[[ $BUCKET == stock ]] || mkbucket "$BUCKET"
	cfg=$RUN_DIR/api-$c-$rep.yml
	slipway_yaml "${PORT[slipway]}" "$MINIO_EP" "$BUCKET" "$ROOT" >"$cfg"
	start slipway "$cfg"
	prep
	t0=$(date +%s.%N)
	xargs -P "$API_JOBS" -I{} "$CRANE_BIN" copy "127.0.0.1:${PORT[stock]}/{}" "127.0.0.1:${PORT[slipway]}/{}" <"$RUN_DIR/refs" \
		>>"$RUN_DIR/crane.log" 2>&1 || rc=$?
	t1=$(date +%s.%N)
	stop slipway
	local wall
	wall=$(jq -n "$t1 - $t0")
	jq -cn --arg case "$c" --argjson rep "$rep" --argjson rc "$rc" --argjson wall "$wall" --argjson bg "$BG" --argjson jobs "$API_JOBS" \
		--argjson tags "$(wc -l <"$RUN_DIR/refs")" \
		'{registry: "crane-copy", scenario: "api-copy", case: $case, rep: $rep, metric: "s", value: $wall, seconds: $wall,
		background_busy_pct: $bg, time: (now | todate), extra: {jobs: $jobs, tags: $tags, exit: $rc}}
		+ (if $rc != 0 then {error: ("exit " + ($rc | tostring))} else {} end)' >>"$RESULTS"
	if ((rc != 0)); then
		fail "API copy ($c, rep $rep: $(tail -2 "$RUN_DIR/crane.log"))"
		return 0
	fi
	log "API copy ($c, rep $rep): $(printf '%.1f' "$wall")s wall (bg ${BG}%)"
}

# verify CASE CONFIG: a Slipway server on an import's destination serves
# every tag at the stock digest and one layer per repository, rehashed.
verify() {
	local c=$1 cfg=$2 ref want got tags=0 tags_bad=0 blobs=0 blobs_bad=0 layer host
	sed "s|127.0.0.1:${PORT[slipway]}|127.0.0.1:${PORT[verify]}|" "$cfg" >"$RUN_DIR/verify-$c.yml"
	start verify "$RUN_DIR/verify-$c.yml"
	host=127.0.0.1:${PORT[verify]}
	while read -r ref want; do
		tags=$((tags + 1))
		got=$("$CRANE_BIN" digest "$host/$ref" 2>>"$CLIENT_LOG") || got=
		[[ $got == "$want" ]] || {
			tags_bad=$((tags_bad + 1))
			log "verify ($c): $ref is '$got', stock has $want"
		}
		if [[ $ref == *:v0 ]]; then
			blobs=$((blobs + 1))
			layer=$("$CRANE_BIN" manifest "$host/$ref" 2>>"$CLIENT_LOG" | jq -r '.layers[0].digest') || layer=
			[[ -n $layer && $("$CRANE_BIN" blob "$host/${ref%:*}@$layer" 2>>"$CLIENT_LOG" | sha256sum | cut -d' ' -f1) == "${layer#sha256:}" ]] || {
				blobs_bad=$((blobs_bad + 1))
				log "verify ($c): layer '$layer' of $ref does not read back"
			}
		fi
	done < <(jq -r '.tags[] | "\(.[0]):\(.[1]) \(.[2])"' "$POP")
	stop verify
	jq -cn --arg case "$c" --argjson t "$tags" --argjson tb "$tags_bad" --argjson b "$blobs" --argjson bb "$blobs_bad" \
		'{registry: "slipway-import", scenario: "import-verify", case: $case, metric: "wrong", value: ($tb + $bb), time: (now | todate),
		extra: {tags: $t, tags_wrong: $tb, layers: $b, layers_wrong: $bb}}' >>"$RESULTS"
	((tags_bad + blobs_bad == 0)) || fail "verification ($c): $tags_bad of $tags tags, $blobs_bad of $blobs layers wrong"
	log "verified ($c): $tags tags, $blobs layers; $tags_bad + $blobs_bad wrong"
}

i=0
for ((rep = 1; rep <= REPS; rep++)); do
	for c in $CASES; do
		i=$((i + 1))
		alternate_order "$rep" "$i" import api
		for what in "${ORDER[@]}"; do
			"run_$what" "$c" "$rep"
		done
	done
done
stock_listing after
stop stock

{
	echo "### Import from the stock registry vs copying through the APIs"
	echo
	machine
	echo
	python3 "$REPO/bench/importsummary.py" "$RESULTS"
} | tee "${RESULTS%.jsonl}.md"
log "raw results: $RESULTS"
((failures == 0)) || exit 1
