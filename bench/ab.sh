#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/ab.sh: before/after of a change on the hot path, in one run.
#
#   bench/ab.sh OLD_BIN_DIR NEW_BIN_DIR [--runs N] [--size SIZE]
#
# OLD_BIN_DIR and NEW_BIN_DIR each hold vmstream-send and vmstream-recv (a
# build of the commit before the change, and of the change). For each
# configuration below, the runs alternate old, new, new, old, ... so that
# drift on a shared machine hits both alike; each run sends a file from
# /dev/shm (page cache) over loopback to a receiver writing to /dev/null.
# Prints per configuration the median GB/s of each side over the runs and
# the median of the per-pair ratios new/old, and the CPU s/GB of both ends
# (the tools' --json cpu figures).
#
#   plain     checksummed, unauthenticated loopback, random data
#   aes       PSK + AES-256-GCM, random data
#   auto-aes  PSK + --compress auto + AES-256-GCM, mixed data
#   file      vmstream-send --output /dev/null (no network), random data
set -euo pipefail

if [ $# -lt 2 ]; then
	sed -n '4,20p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
old=$1 new=$2
shift 2
runs=5 size=2G
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	*) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
for d in "$old" "$new"; do
	for t in vmstream-send vmstream-recv; do
		[ -x "$d/$t" ] || { echo "ab.sh: $d/$t missing" >&2; exit 2; }
	done
done
bench=$new/vmstream-bench
[ -x "$bench" ] || bench=$old/vmstream-bench

work=$(mktemp -d /dev/shm/vms-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$bench" gen --profile random --size "$size" > "$work/random.bin"
"$bench" gen --profile mixed --size "$size" > "$work/mixed.bin"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/psk"
chmod 600 "$work/psk"

# one_run BIN_DIR CONFIG -> "seconds send_cpu recv_cpu bytes"
one_run() {
	local bin=$1 cfg=$2 data=$work/random.bin
	local sargs=() rargs=()
	case $cfg in
	aes) sargs=(--psk-file "$work/psk"); rargs=(--psk-file "$work/psk") ;;
	auto-aes) data=$work/mixed.bin
		sargs=(--psk-file "$work/psk" --compress auto); rargs=(--psk-file "$work/psk") ;;
	esac
	if [ "$cfg" = file ]; then
		local t0 t1
		t0=$(date +%s.%N)
		"$bin/vmstream-send" -q --force --json="$work/s.json" "$data" --output /dev/null
		t1=$(date +%s.%N)
		python3 - "$work/s.json" "$t0" "$t1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(float(sys.argv[3]) - float(sys.argv[2]), s["cpu_user_s"] + s["cpu_sys_s"], 0, s["bytes_in"])
EOF
		return
	fi
	rm -f "$work/port" "$work/r.json" "$work/s.json"
	"$bin/vmstream-recv" -q --listen 127.0.0.1:0 --port-file "$work/port" "${rargs[@]}" \
		--json="$work/r.json" --force /dev/null &
	local rp=$! i
	for i in $(seq 300); do [ -s "$work/port" ] && break; sleep 0.02; done
	local t0 t1
	t0=$(date +%s.%N)
	"$bin/vmstream-send" -q --to "127.0.0.1:$(sed 's/.*://' "$work/port")" "${sargs[@]}" \
		--json="$work/s.json" "$data"
	wait "$rp"
	t1=$(date +%s.%N)
	python3 - "$work/s.json" "$work/r.json" "$t0" "$t1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
print(float(sys.argv[4]) - float(sys.argv[3]), s["cpu_user_s"] + s["cpu_sys_s"],
      r["cpu_user_s"] + r["cpu_sys_s"], s["bytes_in"])
EOF
}

printf '%-9s %9s %9s %7s %12s %12s\n' config "old GB/s" "new GB/s" new/old "old cpu s/GB" "new cpu s/GB"
for cfg in plain aes auto-aes file; do
	: > "$work/old.txt"; : > "$work/new.txt"; : > "$work/ratio.txt"
	for r in $(seq "$runs"); do
		if [ $((r % 2)) -eq 1 ]; then order="old new"; else order="new old"; fi
		for side in $order; do
			dir=$old; [ "$side" = new ] && dir=$new
			one_run "$dir" "$cfg" >> "$work/$side.txt"
		done
		o=$(tail -n 1 "$work/old.txt"); n=$(tail -n 1 "$work/new.txt")
		python3 -c "import sys; o=sys.argv[1].split(); n=sys.argv[2].split(); print(float(o[0])/float(n[0]))" "$o" "$n" >> "$work/ratio.txt"
	done
	python3 - "$cfg" "$work/old.txt" "$work/new.txt" "$work/ratio.txt" <<'EOF'
import statistics as st, sys
def rows(p): return [list(map(float, l.split())) for l in open(p) if l.strip()]
o, n = rows(sys.argv[2]), rows(sys.argv[3])
ratio = [float(l) for l in open(sys.argv[4]) if l.strip()]
gbps = lambda rs: st.median(r[3] / r[0] / 1e9 for r in rs)
cpu = lambda rs: st.median((r[1] + r[2]) / (r[3] / 1e9) for r in rs)
print(f"{sys.argv[1]:<9} {gbps(o):9.2f} {gbps(n):9.2f} {st.median(ratio):7.3f} {cpu(o):12.3f} {cpu(n):12.3f}")
EOF
done
