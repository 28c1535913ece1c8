#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/device.sh: Issue 6 device benchmark (bench/bench_device.c): added
# downtime per small device and a sim device's stop-copy throughput vs the
# same bytes from memory, over a loopback TLS 1.3 PSK session. Builds
# bench_device when needed, runs it, keeps the table and the JSON as
# RESULTS_DIR/device-<UTC stamp>.txt / .json.
#
#   bench/device.sh                  # 5 runs, 1 MiB + 100 x 4 KiB, 1 GiB
#   bench/device.sh --quick          # smoke: 1 run, 10 small devices, 16 MiB
#   bench/device.sh --runs 9 --small 200
#
# Environment: BUILD_DIR (default build-bench; configured Release if absent),
# TOOLS_DIR (use an existing bench_device from there, no build),
# RESULTS_DIR (default bench/results), OUT (JSON path). Other arguments go
# to bench_device (--runs, --big, --small, --small-size, --tput-size, --only).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
results=${RESULTS_DIR:-$here/results}
bin=
if [ -n "${TOOLS_DIR:-}" ]; then
	bin=$TOOLS_DIR/bench_device
	[ -x "$bin" ] || { echo "device.sh: $bin not found" >&2; exit 77; }
else
	build=${BUILD_DIR:-$root/build-bench}
	if [ ! -f "$build/CMakeCache.txt" ]; then
		cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
	fi
	cmake --build "$build" -j2 --target bench_device >/dev/null
	bin=$build/bin/bench_device
fi
mkdir -p "$results"
stamp=$(date -u +%Y-%m-%dT%H%MZ)
out=${OUT:-$results/device-$stamp.json}
txt=${out%.json}.txt
rc=0
{
	echo "# bench/device.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
	"$bin" --json "$out" "$@" || echo $? >"$txt.rc"
} | tee "$txt"
if [ -f "$txt.rc" ]; then
	rc=$(cat "$txt.rc")
	rm -f "$txt.rc"
fi
echo "device.sh: results in $out" >&2
exit "$rc"
