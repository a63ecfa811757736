# bench/lib.sh — helpers shared by run.sh and run-s3.sh (sourced, not run).

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
