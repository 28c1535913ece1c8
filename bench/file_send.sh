#!/usr/bin/env bash
# file_send.sh: how close `vmstream-send --output /dev/null FILE` comes to
# `cat FILE > /dev/null` on a file in the page cache (so the disk is not
# measured). The file (default 2 GiB) mixes random, zero and text stretches.
# 5 alternating runs each; medians and the ratio in a final table.
#
# usage: bash bench/file_send.sh [SIZE_MIB]
# env:   VMS_SEND (tool), VMS_BENCH_DIR (where the file goes; default $TMPDIR or /tmp),
#        VMS_BENCH_RUNS (default 5)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
size_mib=${1:-2048}
runs=${VMS_BENCH_RUNS:-5}
[[ $size_mib =~ ^[1-9][0-9]*$ ]] || { echo "file_send.sh: SIZE_MIB must be a positive integer" >&2; exit 2; }
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "file_send.sh: VMS_BENCH_RUNS must be a positive integer" >&2; exit 2; }

send=${VMS_SEND:-}
if [ -z "$send" ]; then
	for cand in "$root/build/bin/vmstream-send" "$root/build/tools/vmstream-send"; do
		[ -x "$cand" ] && send=$cand && break
	done
fi
if [ -z "$send" ]; then
	send=$(find "$root/build" -type f -name vmstream-send -perm -u+x 2>/dev/null | head -n 1)
fi
[ -n "$send" ] && [ -x "$send" ] || { echo "file_send.sh: vmstream-send not found; build first or set VMS_SEND" >&2; exit 1; }

dir=$(mktemp -d "${VMS_BENCH_DIR:-${TMPDIR:-/tmp}}/file_send.XXXXXX")
trap 'rm -rf "$dir"' EXIT
file=$dir/data

avail_kib=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
if [ "$((size_mib * 1024 * 2))" -gt "$avail_kib" ]; then
	echo "file_send.sh: warning: ${size_mib} MiB may not stay in the page cache" \
		"($((avail_kib / 1024)) MiB available)" >&2
fi

# Mixed data in 64 MiB stretches: half random, a quarter zeros, a quarter
# repeated text (what VM memory and device state look like, roughly).
echo "file_send.sh: writing a ${size_mib} MiB test file to $dir"
{
	for ((i = 0; i < size_mib / 64; i++)); do
		case $((i % 4)) in
		0 | 2) head -c $((64 << 20)) /dev/urandom ;;
		1) head -c $((64 << 20)) /dev/zero ;;
		3) { yes 'vmstream bench: device state text, repeated to look like real memory.' ||
			true; } | head -c $((64 << 20)) ;; # yes ends by SIGPIPE
		esac
	done
	head -c $(((size_mib % 64) << 20)) /dev/urandom
} >"$file"
size=$(stat -c %s "$file")
cat "$file" >/dev/null # into the page cache

# elapsed CMD...: wall seconds of CMD (stdout discarded).
elapsed() {
	local t0=$EPOCHREALTIME t1
	"$@" >/dev/null
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

cat_times=()
send_times=()
for ((i = 1; i <= runs; i++)); do
	cat_times+=("$(elapsed cat "$file")")
	send_times+=("$(elapsed "$send" --quiet --no-progress --output /dev/null "$file")")
	echo "  run $i: cat ${cat_times[-1]} s, vmstream-send ${send_times[-1]} s"
done
cat_med=$(printf '%s\n' "${cat_times[@]}" | median)
send_med=$(printf '%s\n' "${send_times[@]}" | median)

awk -v size="$size" -v c="$cat_med" -v s="$send_med" -v runs="$runs" -v tool="$send" 'BEGIN {
	printf "\nfile_send.sh: %.0f MiB cached file, %d alternating runs, medians (%s)\n",
		size / 1048576, runs, tool
	printf "%-44s %10s %10s %10s\n", "", "seconds", "GB/s", "x cat"
	printf "%-44s %10.3f %10.2f %10.3f\n", "cat FILE > /dev/null", c, size / c / 1e9, 1
	printf "%-44s %10.3f %10.2f %10.3f\n", "vmstream-send --output /dev/null FILE", s,
		size / s / 1e9, c / s
}'
