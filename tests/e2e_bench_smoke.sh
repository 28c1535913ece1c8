#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Smoke test of the benchmark scripts (bench/run_all.sh --quick): every
# scenario at tiny sizes, one run, no thresholds: the in-memory stages,
# the loopback suite (all rows: baselines, plain/aes/auto, lanes, chunk
# sizes, RSS, per-byte costs), the netns suite (skipped cleanly when not
# root or network namespaces are unavailable), the device bench, the plots
# and the generated document. It checks that every step ran, every
# measurement succeeded and every artefact is there, so the scripts do not
# rot. Results go to a temporary directory; nothing in bench/results or
# docs/ is touched. Meant to finish in < 90 s on an idle machine (the PASS
# line says how long it took); the watchdog only ends a hang.
#
# Tools: $VMS_TOOLS_DIR (set by CTest), else build/bin, else build-bench/bin.
# The netns part uses namespaces named after this process (vmsA<pid>,
# vmsB<pid>) so it never meets a real bench/netns.sh run.
# Last line: "e2e_bench_smoke: N passed, N failed".
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=
for d in "${VMS_TOOLS_DIR:-}" "$root/build/bin" "$root/build-bench/bin"; do
	if [ -n "$d" ] && [ -x "$d/vmstream-send" ] && [ -x "$d/bench_device" ] && [ -x "$d/vmstream-bench" ]; then
		tools=$d
		break
	fi
done
if [ -z "$tools" ]; then
	echo "e2e_bench_smoke: vmstream tools and bench_device not built (set VMS_TOOLS_DIR); SKIP"
	exit 77
fi
for c in python3 iperf3 socat nc zstd openssl xxhsum; do
	command -v "$c" >/dev/null || { echo "e2e_bench_smoke: $c missing; SKIP"; exit 77; }
done
[ -x /usr/bin/time ] || { echo "e2e_bench_smoke: /usr/bin/time missing; SKIP"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2e_bench_smoke.XXXXXX")
RUNPID=
cleanup() {
	if [ -n "$RUNPID" ]; then
		kill -TERM "$RUNPID" 2>/dev/null
		wait "$RUNPID" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS $1"; }
ko() {
	failed=$((failed + 1))
	echo "FAIL $1"
	[ -z "${2:-}" ] || sed 's/^/    /' <<<"$2"
}
check() { # check NAME CMD...
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else ko "$name" "$out"; fi
}

T0=$(date +%s)
res=$tmp/results

# ---- argument handling of the scripts (fast) ---------------------------------------
check "net.sh --list names the rows" bash -c "bash '$root/bench/net.sh' --tools-dir '$tools' --list | grep -q '^random/plain/uring/L1 '"
check "net.sh: bad option is a usage error (2)" bash -c "bash '$root/bench/net.sh' --tools-dir '$tools' --no-such-option >/dev/null 2>&1; [ \$? = 2 ]"
check "run_all.sh: bad option is a usage error (2)" bash -c "bash '$root/bench/run_all.sh' --no-such-option >/dev/null 2>&1; [ \$? = 2 ]"

# ---- the whole thing, quick ----------------------------------------------------------
# A watchdog against a hang, not a speed limit: a loaded machine may take
# several times the idle 90 s. TERM at VMS_BENCH_SMOKE_TIMEOUT seconds
# (run_all.sh stops its step, which cleans up), below CTest's timeout.
WATCHDOG=${VMS_BENCH_SMOKE_TIMEOUT:-400}
NS_A=vmsA$$ NS_B=vmsB$$ MTUS=1500 bash "$root/bench/run_all.sh" --quick --no-build --tools-dir "$tools" \
	--results-dir "$res" >"$tmp/run_all.log" 2>&1 &
RUNPID=$!
(
	trap 'kill "$sp" 2>/dev/null; exit 0' TERM
	sleep "$WATCHDOG" &
	sp=$!
	wait "$sp"
	kill -TERM "$RUNPID" 2>/dev/null
) >/dev/null 2>&1 &
dog=$!
rc=0
wait "$RUNPID" || rc=$?
RUNPID=
kill "$dog" 2>/dev/null
wait "$dog" 2>/dev/null
log=$(cat "$tmp/run_all.log")
if [ "$rc" = 0 ]; then
	ok "run_all.sh --quick --no-build (exit 0, $(($(date +%s) - T0)) s)"
else
	ko "run_all.sh --quick --no-build exited $rc" "$(tail -n 40 "$tmp/run_all.log")"
fi

# ---- every step ran --------------------------------------------------------------------
for s in stages net netns device plot; do
	if grep -q "]: $s: done" <<<"$log"; then
		ok "step $s ran"
	elif [ "$s" = netns ] && grep -q "]: netns: SKIPPED" <<<"$log"; then
		echo "SKIP step netns (not root or no network namespaces)"
	else
		ko "step $s ran" "$(grep -E "]: $s: |FAIL|Traceback|error" <<<"$log" | head -n 20)"
	fi
done

# ---- the artefacts -----------------------------------------------------------------------
json_ok() { # json_ok FILE PYTHON-EXPR (j = the JSON)
	python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"
}
net=$(ls "$res"/net-*.json 2>/dev/null | head -n 1)
if [ -n "$net" ]; then
	check "net: every loopback measurement succeeded" json_ok "$net" "j['failures'] == 0 and all(not r['failed'] for r in j['rows'])"
	check "net: every scenario present (baselines, plain/posix, aes, auto, lanes, chunks, rss, costs)" json_ok "$net" \
		"{'iperf3','cat-nc','socat','socat-tls','zstd-nc:mixed','zstd-openssl-nc:mixed','random/plain/uring/L1','random/plain/posix/L1','random/aes/uring/L4','mixed/auto+aes/uring/L2','random/plain/uring/L1/chunk64K','mixed/auto+aes/rss64M','cost/aes-gcm','cost/zstd1:mixed','cost/read'} <= {r['id'] for r in j['rows']}"
	check "net: targets and CPU ceilings computed" json_ok "$net" \
		"len(j['targets']) >= 8 and all(t['value'] for t in j['targets']) and len(j['ceilings']) >= 5"
	check "net: vmstream rows carry CPU (--json) and RSS" json_ok "$net" \
		"all(s.get('send_cpu_s_per_gb') and s.get('recv_rss_kib') for r in j['rows'] if r['kind']=='vmstream' for s in r['samples'])"
else
	ko "net: results JSON written"
fi
nsj=$(ls "$res"/netns-mtu*.json 2>/dev/null | head -n 1)
if [ -n "$nsj" ]; then
	check "netns: every measurement succeeded" json_ok "$nsj" "j['failures'] == 0 and len(j['rows']) >= 6"
	check "netns: shaped-rate targets computed" json_ok "$nsj" "len(j['targets']) >= 2 and all(t['value'] for t in j['targets'])"
elif grep -q "]: netns: SKIPPED" <<<"$log"; then
	echo "SKIP netns results (suite skipped)"
else
	ko "netns: results JSON written"
fi
no_ns_left() {
	! ip netns list 2>/dev/null | awk '{ print $1 }' | grep -Eqx "vms[AB]$$"
}
check "netns: no namespace left behind" no_ns_left
dev=$(ls "$res"/device-*.json 2>/dev/null | head -n 1)
if [ -n "$dev" ]; then
	check "device: downtime and throughput measured" json_ok "$dev" \
		"all(e['per_device_us']['samples'] for e in j['downtime']['engines']) and len(j['downtime']['engines']) == 2 and j['throughput']['ratio_aes']['median'] > 0 and j['throughput']['ratio_plain']['median'] > 0"
else
	ko "device: results JSON written"
fi
check "stages: quick table written" test -s "$res/stages-quick.txt"
for f in throughput-baselines throughput-lanes throughput-chunk rss-stream-size device; do
	check "plot: $f.svg is SVG" bash -c "head -c 200 '$res/$f.svg' | grep -q '<svg'"
done
if [ -n "$nsj" ]; then
	check "plot: netns.svg is SVG" bash -c "head -c 200 '$res/netns.svg' | grep -q '<svg'"
fi
check "doc: PERFORMANCE.md has every section" bash -c "for h in '## Machine and noise' '## Targets' '## Loopback' '## Devices' '## In-memory stages' '## How to reproduce' 'throughput-lanes.svg'; do grep -qF \"\$h\" '$res/PERFORMANCE.md' || { echo \"missing: \$h\"; exit 1; }; done"
check "doc: nothing written outside the results directory" bash -c "! ls '$root'/bench/results/*quick* >/dev/null 2>&1"

echo "e2e_bench_smoke: $passed passed, $failed failed ($(($(date +%s) - T0)) s)"
[ "$failed" = 0 ]
