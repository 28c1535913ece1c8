#!/usr/bin/env bash
# Every single-bit flip and every truncation of a small stream must make
# vmstream-recv fail with exit 4 (invalid/corrupt/truncated stream), one
# stderr line naming a VMS_E code, no OUTPUT file and no temporary file left.
# A sample of the damaged streams must also fail vmstream-inspect --verify
# with exit 4.
#
# All damaged streams are written by one python3 run; the checks are a tight
# bash loop (builtins only besides the tool itself), split over nproc workers.
# Tools: $VMS_SEND, $VMS_RECV, $VMS_INSPECT (set by CTest), else build/bin/.
# Last line: "e2e_tool_corruption: N passed, N failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

find_tool() { # find_tool VAR NAME
	local var=$1 name=$2 dir
	if [ -n "${!var:-}" ]; then
		printf '%s\n' "${!var}"
		return
	fi
	for dir in "${VMS_TOOLS_DIR:-}" "${VMS_BUILD_DIR:-$root/build}/bin" "$root/build/bin" \
		"$root/build/tools"; do
		if [ -n "$dir" ] && [ -x "$dir/$name" ]; then
			printf '%s\n' "$dir/$name"
			return
		fi
	done
	echo "e2e_tool_corruption: $name not found; build first or set $var" >&2
	exit 77
}
SEND=$(find_tool VMS_SEND vmstream-send)
RECV=$(find_tool VMS_RECV vmstream-recv)
INSPECT=$(find_tool VMS_INSPECT vmstream-inspect)
command -v python3 >/dev/null || { echo "e2e_tool_corruption: python3 missing" >&2; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2e_corrupt.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# 6000 bytes in 4 KiB chunks: preamble, DEVICE_BEGIN, DATA 4096, DATA 1904,
# DEVICE_END, EOS. Random bytes, so no chunk is elided or compressed.
head -c 6000 /dev/urandom >"$tmp/in"
"$SEND" -q --chunk-size 4096 -o "$tmp/base.vms" "$tmp/in"
"$RECV" -q -i "$tmp/base.vms" "$tmp/check"
cmp "$tmp/in" "$tmp/check"
size=$(stat -c %s "$tmp/base.vms")
records=$("$INSPECT" --json "$tmp/base.vms" |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)["records"]))')
echo "e2e_tool_corruption: base stream $size bytes, $records records"

# flip/N: bit (N % 8) of byte N inverted; cut/N: the first N bytes.
mkdir "$tmp/flip" "$tmp/cut"
python3 - "$tmp" <<'EOF'
import os, sys
d = sys.argv[1]
base = open(os.path.join(d, "base.vms"), "rb").read()
for i in range(len(base)):
    b = bytearray(base)
    b[i] ^= 1 << (i % 8)
    with open(os.path.join(d, "flip", str(i)), "wb") as f:
        f.write(b)
    with open(os.path.join(d, "cut", str(i)), "wb") as f:
        f.write(base[:i])
EOF

# check_cases KIND WORKER NWORKERS: run recv on KIND/N for every N with
# N % NWORKERS == WORKER; print one line per failed case, then "n_ok n_bad".
check_cases() {
	local kind=$1 w=$2 nw=$3
	local odir="$tmp/out.$w" out err="$tmp/err.$w" i rc ok=0 bad=0
	local -a lines left
	mkdir -p "$odir"
	out="$odir/out"
	shopt -s nullglob dotglob
	for ((i = w; i < size; i += nw)); do
		rc=0
		"$RECV" -i "$tmp/$kind/$i" "$out" 2>"$err" || rc=$?
		mapfile -t lines <"$err"
		left=("$odir"/*)
		if [ "$rc" -ne 4 ]; then
			echo "FAIL $kind $i: exit $rc, expected 4: ${lines[*]}"
		elif [ "${#lines[@]}" -ne 1 ] ||
			! [[ ${lines[0]} =~ ^vmstream-recv:\ error:\ VMS_E[A-Z]+:\ .+ ]]; then
			echo "FAIL $kind $i: stderr is not one 'error: VMS_E...' line: ${lines[*]}"
		elif [ "${#left[@]}" -ne 0 ]; then
			echo "FAIL $kind $i: left behind: ${left[*]}"
			rm -f "${left[@]}"
		else
			ok=$((ok + 1))
			continue
		fi
		bad=$((bad + 1))
	done
	echo "$ok $bad"
}

start=$(date +%s)
nworkers=$(nproc 2>/dev/null || echo 2)
[ "$nworkers" -le 8 ] || nworkers=8
[ "$nworkers" -ge 2 ] || nworkers=2
pids=()
for ((w = 0; w < nworkers; w++)); do
	{
		check_cases flip "$w" "$nworkers"
		check_cases cut "$w" "$nworkers"
	} >"$tmp/res.$w" &
	pids+=($!)
done
for pid in "${pids[@]}"; do
	wait "$pid"
done

passed=0
failed=0
while read -r first rest; do
	if [[ $first =~ ^[0-9]+$ ]] && [[ $rest =~ ^[0-9]+$ ]]; then
		passed=$((passed + first))
		failed=$((failed + rest))
	else
		echo "$first $rest"
	fi
done < <(cat "$tmp"/res.*)
echo "e2e_tool_corruption: recv: $passed of $((2 * size)) damaged streams rejected correctly" \
	"in $(($(date +%s) - start)) s"
if [ "$((passed + failed))" -ne "$((2 * size))" ]; then
	echo "FAIL only $((passed + failed)) of $((2 * size)) cases were checked"
	failed=$((failed + 1))
fi

# Errors seen, for the log: which codes the damage produced.
# (Also proves the loop above saw real errors, not a missing tool.)
for kind in flip cut; do
	for ((i = 0; i < size; i += 97)); do
		"$RECV" -i "$tmp/$kind/$i" "$tmp/out.0/out" 2>&1 | sed -E 's/^vmstream-recv: error: (VMS_E[A-Z]+):.*/\1/' || true
	done
done | sort | uniq -c | sed 's/^/  sample: /'

# inspect --verify on every 23rd damaged stream of each kind.
sampled=0
for kind in flip cut; do
	for ((i = 0; i < size; i += 23)); do
		rc=0
		"$INSPECT" --verify "$tmp/$kind/$i" >/dev/null 2>"$tmp/ierr" || rc=$?
		if [ "$rc" -ne 4 ] || ! grep -Eq '^vmstream-inspect: error: VMS_E[A-Z]+: ' "$tmp/ierr"; then
			echo "FAIL inspect --verify $kind $i: exit $rc: $(cat "$tmp/ierr")"
			failed=$((failed + 1))
		else
			passed=$((passed + 1))
		fi
		sampled=$((sampled + 1))
	done
done
echo "e2e_tool_corruption: inspect --verify: $sampled sampled"

echo "e2e_tool_corruption: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
