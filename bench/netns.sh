#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/netns.sh: vmstream across a shaped link (Issue 7). Two network
# namespaces joined by a veth pair, 10.77.0.1/24 (sender side) and
# 10.77.0.2/24 (receiver side), a TBF qdisc on the sender's veth egress at
# each rate (default 1 Gbit/s and 10 Gbit/s), and in them, alternating run
# by run: iperf3 -l 1M, and vmstream-send/recv with --psk-file (the traffic
# leaves loopback, so the session is authenticated: TLS 1.3 PSK, AES-256-GCM)
# and --compress auto on random and on mixed data (bench/net.sh --suite
# netns does the measuring).
#
# Targets: random data, auto: >= 0.95 x the shaped rate; mixed data, auto,
# 1 Gbit/s: >= 1.8 x the shaped rate in raw bytes/s. TBF counts whole
# frames (Ethernet + IP + TCP headers), so with MTU 1500 a TCP payload can
# use at most 1448/1514 = 0.956 of the rate; the suite therefore runs with
# MTU 1500 and again with MTU 9000 (0.993), and also reports every row
# against iperf3 over the same link.
#
#   bench/netns.sh                 # 5 runs, MTU 1500 and 9000
#   bench/netns.sh --quick         # smoke: 16 MiB, 1 run, 1 s iperf3
#   MTUS=1500 RATES=1gbit bench/netns.sh --runs 3
#
# Environment: NS_A / NS_B (namespace names, default vmsA / vmsB), MTUS
# ("1500 9000"), RATES (1gbit,10gbit), RATE_SIZES (1gbit=512M,10gbit=2G:
# bytes per transfer at each rate), BURSTS (1gbit=256kb,10gbit=8mb),
# RESULTS_DIR (bench/results). Other options go to bench/net.sh (--runs,
# --quick, --tools-dir, --iperf-seconds ...). Results:
# RESULTS_DIR/netns-mtu<MTU>-<UTC stamp>.json and .txt.
#
# Only the two namespaces and their veth pair are created (the veth is made
# inside the namespaces, so nothing appears in the root namespace), and they
# are deleted at the end, on failure and on Ctrl-C. Needs root, ip (iproute2)
# and tc; exits 77 (skip) when it cannot create network namespaces.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NS_A=${NS_A:-vmsA}
NS_B=${NS_B:-vmsB}
MTUS=${MTUS:-1500 9000}
RATES=${RATES:-1gbit,10gbit}
RATE_SIZES=${RATE_SIZES:-1gbit=512M,10gbit=2G}
BURSTS=${BURSTS:-1gbit=256kb,10gbit=8mb}
RESULTS_DIR=${RESULTS_DIR:-$here/results}
OUT_PREFIX=${OUT_PREFIX:-}
skip() { echo "netns.sh: SKIP: $*" >&2; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, tc)"
command -v ip >/dev/null || skip "ip (iproute2) not installed"
command -v tc >/dev/null || skip "tc (iproute2) not installed"
for ns in "$NS_A" "$NS_B"; do
	if ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qx -- "$ns"; then
		echo "netns.sh: network namespace $ns already exists (another run?); set NS_A/NS_B" >&2
		exit 1
	fi
done

created=()
teardown() {
	local ns
	for ns in "${created[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	created=()
}
trap teardown EXIT
trap 'teardown; exit 130' INT
trap 'teardown; exit 143' TERM
trap 'teardown; exit 129' HUP

ip netns add "$NS_A" 2>/dev/null || skip "cannot create network namespace $NS_A"
created+=("$NS_A")
ip netns add "$NS_B" 2>/dev/null || skip "cannot create network namespace $NS_B"
created+=("$NS_B")
ip -n "$NS_A" link add vmsA0 type veth peer name vmsB0 netns "$NS_B" 2>/dev/null ||
	skip "cannot create a veth pair between $NS_A and $NS_B"
ip -n "$NS_A" addr add 10.77.0.1/24 dev vmsA0
ip -n "$NS_B" addr add 10.77.0.2/24 dev vmsB0
for ns in "$NS_A" "$NS_B"; do
	ip -n "$ns" link set lo up
done
ip -n "$NS_A" link set vmsA0 up
ip -n "$NS_B" link set vmsB0 up
ip netns exec "$NS_A" tc qdisc replace dev vmsA0 root tbf rate 1gbit burst 256kb latency 50ms ||
	skip "tc tbf not available"

status=0
stamp=$(date -u +%Y-%m-%dT%H%MZ)
mkdir -p "$RESULTS_DIR"
for mtu in $MTUS; do
	ip -n "$NS_A" link set vmsA0 mtu "$mtu"
	ip -n "$NS_B" link set vmsB0 mtu "$mtu"
	echo "netns.sh: $NS_A(10.77.0.1, vmsA0, TBF) <-> $NS_B(10.77.0.2, vmsB0), MTU $mtu, rates $RATES"
	rc=0
	bash "$here/net.sh" --suite netns --ns-send "$NS_A" --ns-recv "$NS_B" --host 10.77.0.2 \
		--dev vmsA0 --rates "$RATES" --rate-sizes "$RATE_SIZES" --bursts "$BURSTS" --mtu "$mtu" \
		--out "$RESULTS_DIR/${OUT_PREFIX}netns-mtu$mtu-$stamp.json" "$@" || rc=$?
	case $rc in
	0) ;;
	130 | 143 | 129) exit "$rc" ;;
	*) status=$rc ;;
	esac
done
exit "$status"
