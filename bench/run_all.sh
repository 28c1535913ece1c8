#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/run_all.sh: every benchmark in one command, then the plots and
# docs/PERFORMANCE.md from the results.
#
#   bench/run_all.sh            # Release build in build-bench/, then
#                               # stages.sh, net.sh, netns.sh, device.sh (5 runs
#                               # each), plot.py --doc docs/PERFORMANCE.md
#   bench/run_all.sh --quick    # smoke: tiny sizes, 1 run; results and the
#                               # document go to a temporary directory (printed)
#
# Options:
#   --quick               tiny sizes and 1 run everywhere
#   --no-build            do not build; use --tools-dir (or $VMS_TOOLS_DIR)
#   --tools-dir DIR       directory with vmstream-send/-recv/-bench, bench_device
#   --build-dir DIR       build directory (default build-bench)
#   --results-dir DIR     where results go (default bench/results; --quick: a temp dir)
#   --doc FILE            document to write (default docs/PERFORMANCE.md;
#                         --quick: RESULTS_DIR/PERFORMANCE.md)
#   --skip LIST           steps to leave out: stages,net,netns,device,plot
#   --runs N              runs per benchmark (default 5; --quick 1)
#   --size S              net.sh file size (default 2G)
# Environment: WAIT_QUIET=SECONDS (wait for a quiet machine before each step).
# A step that fails is reported and the others still run; the exit status is
# that of the first failed step (netns skipped for want of root/netns is not
# a failure). SIGINT/SIGTERM stop the running step (which cleans up after
# itself: temporary files, network namespaces) and end the script.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

quick=0 build=1 tools='' builddir=$root/build-bench results='' docfile='' skip='' runs='' size=''
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--no-build) build=0 ;;
	--tools-dir) tools=$2; shift ;;
	--build-dir) builddir=$2; shift ;;
	--results-dir) results=$2; shift ;;
	--doc) docfile=$2; shift ;;
	--skip) skip=$2; shift ;;
	--runs) runs=$2; shift ;;
	--size) size=$2; shift ;;
	-h | --help) sed -n '3,30p' "$0"; exit 0 ;;
	*) echo "run_all.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
skipped() { case ",$skip," in *",$1,"*) return 0 ;; esac; return 1; }
if [ -z "$results" ]; then
	if [ "$quick" = 1 ]; then
		results=$(mktemp -d "${TMPDIR:-/tmp}/vmstream-run_all.XXXXXX")
	else
		results=$here/results
	fi
fi
mkdir -p "$results"
[ -n "$docfile" ] || { [ "$quick" = 1 ] && docfile=$results/PERFORMANCE.md || docfile=$root/docs/PERFORMANCE.md; }
[ -n "$runs" ] || { [ "$quick" = 1 ] && runs=1 || runs=5; }
qarg=()
[ "$quick" = 1 ] && qarg=(--quick)

T0=$(date +%s)
log() { echo "run_all.sh [$(($(date +%s) - T0))s]: $*"; }

# ---- build ---------------------------------------------------------------------
if [ "$build" = 1 ]; then
	log "building Release in $builddir"
	if ! { cmake -S "$root" -B "$builddir" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
		cmake --build "$builddir" -j2 --target vmstream-send vmstream-recv vmstream-bench bench_device >/dev/null; }; then
		echo "run_all.sh: build failed" >&2
		exit 1
	fi
	tools=$builddir/bin
fi
[ -n "$tools" ] || tools=${VMS_TOOLS_DIR:-$builddir/bin}
for t in vmstream-send vmstream-recv vmstream-bench bench_device; do
	[ -x "$tools/$t" ] || { echo "run_all.sh: $tools/$t missing (build first or pass --tools-dir)" >&2; exit 77; }
done

# ---- steps ---------------------------------------------------------------------
status=0
CHILD=
on_signal() {
	local sig=$1
	if [ -n "$CHILD" ]; then
		kill -TERM "$CHILD" 2>/dev/null
		wait "$CHILD" 2>/dev/null
	fi
	echo "run_all.sh: interrupted" >&2
	exit $((128 + sig))
}
trap 'on_signal 2' INT
trap 'on_signal 15' TERM
trap 'on_signal 1' HUP

# WAIT_QUIET=SECONDS: before each step, wait (at most that long) until the
# machine has been nearly idle (< 0.25 cores busy) for 5 s; other people's
# jobs on this 2-core machine bias the results.
busy_ticks() {
	# shellcheck disable=SC2046 # split the cpu line on purpose
	set -- $(head -n 1 /proc/stat)
	echo $(($2 + $3 + $4 + $7 + $8))
}
wait_quiet() {
	local limit=${WAIT_QUIET:-0} waited=0 a b hz
	[ "$limit" -gt 0 ] || return 0
	hz=$(getconf CLK_TCK)
	while :; do
		a=$(busy_ticks)
		sleep 5
		b=$(busy_ticks)
		[ $(((b - a) * 20)) -ge $((hz * 25)) ] || { log "machine quiet after ${waited}s"; return 0; }
		waited=$((waited + 5))
		if [ "$waited" -ge "$limit" ]; then
			log "machine still busy after ${limit}s ($(cut -d' ' -f1-3 /proc/loadavg)); running anyway"
			return 0
		fi
	done
}

# step NAME CMD...: run CMD in the background (so a signal reaches us at once)
step() {
	local name=$1 rc=0
	shift
	if skipped "$name"; then
		log "$name: skipped (--skip)"
		return
	fi
	[ "$name" = plot ] || wait_quiet
	log "$name: $*"
	"$@" &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=
	case $rc in
	0) log "$name: done" ;;
	77) log "$name: SKIPPED (prerequisite missing, exit 77)" ;;
	*)
		log "$name: FAILED (exit $rc)"
		[ "$status" != 0 ] || status=$rc
		;;
	esac
}

stages() {
	if [ "$quick" = 1 ]; then
		# straight to the tool: no build, no data files, a few seconds
		"$tools/vmstream-bench" stages --quick --runs 1 --json "$results/stages-quick.json" \
			>"$results/stages-quick.txt"
	else
		BUILD_DIR=$builddir RUNS=$runs RESULTS_DIR=$results bash "$here/stages.sh" >/dev/null
	fi
}
netsh() {
	local a=(--tools-dir "$tools" --runs "$runs" --out "$results/net-$(date -u +%Y-%m-%dT%H%MZ).json" "${qarg[@]}")
	[ -z "$size" ] || a+=(--size "$size")
	bash "$here/net.sh" "${a[@]}"
}
netnssh() {
	RESULTS_DIR=$results bash "$here/netns.sh" --tools-dir "$tools" --runs "$runs" "${qarg[@]}"
}
device() {
	TOOLS_DIR=$tools RESULTS_DIR=$results bash "$here/device.sh" --runs "$runs" "${qarg[@]}"
}
plot() {
	python3 "$here/plot.py" --results "$results" --doc "$docfile"
}

if [ -f "$here/stages.sh" ]; then
	step stages stages
else
	log "stages: bench/stages.sh not present, skipped"
fi
step net netsh
step netns netnssh
step device device
step plot plot
log "results in $results, document $docfile; exit status $status"
exit "$status"
