#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Issue 4 benchmark, end to end: build vmstream-bench (and vmstream-send, if
# it exists) when needed, generate the data files into a temporary directory
# (removed at exit), run `vmstream-bench stages`, and keep the table as
# bench/results/stages-<UTC date>.txt (the JSON next to it).
#
#   bench/stages.sh                 # 5 runs of 256 MiB per row and profile
#   RUNS=7 SIZE=512M bench/stages.sh
#   bench/stages.sh --only matrix   # extra arguments go to `vmstream-bench stages`
#
# Environment: BUILD_DIR (default: build), RUNS (5), SIZE (256M),
# PROFILES (mixed,random), TMPDIR, RESULTS_DIR (default: bench/results),
# WAIT_QUIET=SECONDS (first wait up to that long for an idle machine),
# MAX_OTHER=CORES (0.3: a run during which other processes used more CPU
# is discarded and repeated, at most RUNS times; 0 keeps every run).
# Do not run anything heavy at the same time: the machine has two cores.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD_DIR:-$root/build}
runs=${RUNS:-5}
size=${SIZE:-256M}
profiles=${PROFILES:-mixed,random}
max_other=${MAX_OTHER:-0.3}
results=${RESULTS_DIR:-$here/results}

if [ ! -f "$build/CMakeCache.txt" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
targets=vmstream-bench
if cmake --build "$build" --target help 2>/dev/null | grep -q 'vmstream-send'; then
	targets="$targets vmstream-send"
fi
for t in $targets; do
	cmake --build "$build" -j2 --target "$t" >/dev/null
done
bench="$build/bin/vmstream-bench"
[ -x "$bench" ] || { echo "stages.sh: $bench was not built" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmstream-stages.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'rm -rf "$tmp"; exit 130' INT TERM HUP

old_ifs=$IFS
IFS=,
for p in $profiles; do
	"$bench" gen --profile "$p" --size "$size" > "$tmp/$p.bin"
done
IFS=$old_ifs

# Optionally wait (at most WAIT_QUIET seconds) until the machine has been
# nearly idle for 10 s: other people's jobs bias two-thread rows more than
# one-thread baselines, which the alternation cannot undo.
busy_ticks() {
	# shellcheck disable=SC2046 # split the cpu line into fields on purpose
	set -- $(head -n 1 /proc/stat)
	echo $(( $2 + $3 + $4 + $7 + $8 ))	# user nice system irq softirq
}
if [ "${WAIT_QUIET:-0}" -gt 0 ]; then
	hz=$(getconf CLK_TCK)
	waited=0
	while :; do
		a=$(busy_ticks)
		sleep 10
		b=$(busy_ticks)
		# busy below a quarter of a core: (b - a) / hz / 10 s < 0.25
		if [ $(( (b - a) * 40 )) -lt $(( hz * 100 )) ]; then
			break
		fi
		waited=$((waited + 10))
		if [ "$waited" -ge "$WAIT_QUIET" ]; then
			echo "stages.sh: machine still busy after ${WAIT_QUIET}s; running anyway" >&2
			break
		fi
	done
fi

mkdir -p "$results"
stamp=$(date -u +%Y-%m-%dT%H%MZ)
out="$results/stages-$stamp.txt"
json="$results/stages-$stamp.json"
# Describe the sources the build directory was configured from (BUILD_DIR may
# point at a build of another tree). REV overrides, e.g. for a git archive.
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
src=${src:-$root}
if [ -z "${REV:-}" ]; then
	REV=$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "unknown (not a git checkout)")
	if [ -n "$(git -C "$src" status --porcelain -- libvmstream include bench 2>/dev/null)" ]; then
		REV="$REV + uncommitted changes"
	fi
fi

# vmstream-bench exits 1 if a measurement failed (a missed target is only
# reported); keep that status through the pipe to tee.
{
	echo "# bench/stages.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), sources $src, git $REV"
	echo "# vmstream-bench stages --runs $runs --size $size --profiles $profiles --max-other $max_other $*"
	"$bench" stages --runs "$runs" --size "$size" --profiles "$profiles" \
		--max-other "$max_other" --data-dir "$tmp" --json "$json" "$@" ||
		echo $? > "$tmp/status"
} | tee "$out"
status=0
[ -f "$tmp/status" ] && status=$(cat "$tmp/status")
echo "stages.sh: table saved as $out (samples: $json)" >&2
exit "$status"
