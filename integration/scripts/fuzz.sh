#!/usr/bin/env bash
# Runs every Go fuzz target for $FUZZTIME each (default 30s), one after the
# other: `go test -fuzz` takes one target per invocation. `make fuzz` and
# `make test` call it. A target that fails leaves its input under the
# package's testdata/fuzz/<Target>/; commit that file with the fix, and the
# plain `go test` runs it from then on.
#
# Adding a target is one line in TARGETS; a Fuzz function missing from the
# list fails the run, so none is left out of CI by accident.
set -euo pipefail
cd "$(dirname "$0")/../.."

GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-30s}"
# Each new input that widens coverage is minimized first, 60s by default,
# during which the run makes no progress: with 30s per target the default
# spent most runs minimizing (FuzzParseConfig: ~100 inputs tried in 30s
# instead of ~90,000). A crasher is still minimized, just for less long.
FUZZMINIMIZETIME="${FUZZMINIMIZETIME:-5s}"

# package  target
TARGETS='
./registry FuzzParseRoute
./registry FuzzRepositoryName
./registry FuzzParseRef
./registry FuzzContentRange
./registry FuzzValidateManifest
./auth     FuzzParseScopes
./config   FuzzParseConfig
'

listed=$(awk 'NF { print $2 }' <<<"$TARGETS" | sort)
found=$(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\([a-z]+ \*testing\.F\)' . | sed -E 's/^func ([A-Za-z0-9_]+).*/\1/' | sort)
if [ "$listed" != "$found" ]; then
	echo "fuzz.sh: TARGETS and the Fuzz functions in the tree differ (< listed, > found):" >&2
	diff <(echo "$listed") <(echo "$found") >&2 || true
	exit 1
fi

# inputs lists a target's committed and new failing inputs.
inputs() { ls "$1/testdata/fuzz/$2" 2>/dev/null || true; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
start=$SECONDS
while read -r pkg target; do
	[ -n "$pkg" ] || continue
	t0=$SECONDS
	before=$(inputs "$pkg" "$target")
	if "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" 2>&1 | tee "$log"; then
		echo "fuzz: $target ok ($((SECONDS - t0))s)"
	elif [ "$(inputs "$pkg" "$target")" = "$before" ] &&
		[ "$(grep -A1 -- '^--- FAIL' "$log" | sed -n 2p | tr -d '[:space:]')" = contextdeadlineexceeded ]; then
		# Go 1.26's fuzzing coordinator can report the end of -fuzztime
		# itself as this failure (golang/go#75804, fixed in Go 1.27): no
		# input failed, none was written.
		echo "fuzz: $target ok ($((SECONDS - t0))s; go's end-of-fuzztime race reported as a failure, no failing input)"
	else
		echo "fuzz: $target FAILED ($((SECONDS - t0))s); its input is under $pkg/testdata/fuzz/$target/" >&2
		failed+=("$target")
	fi
done <<<"$TARGETS"
echo "fuzz: ${#failed[@]} failed of $(wc -w <<<"$listed") targets in $((SECONDS - start))s"
[ ${#failed[@]} -eq 0 ]
