#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Default budgets agree (issue 11, defect 4): whatever vmstream-send accepts
# at its default --memory, vmstream-recv at its defaults accepts. Every
# chunk size from 4K to 16M (powers of two) x codec (none, zstd, zstd:19,
# auto) x cipher (none, AES-256-GCM, ChaCha20-Poly1305), through a stream
# file and through a network session, bit-exact. No --memory anywhere.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=e2e_budgets
TEST_TIMEOUT=${VMS_E2E_BUDGETS_TEST_TIMEOUT:-600}
. "$root/tests/lib_e2e.sh"
SEND=$(find_tool VMS_SEND vmstream-send)
RECV=$(find_tool VMS_RECV vmstream-recv)
need openssl cmp

# A 3 MiB input, half compressible: the budgets follow the chunk cap, not
# the data, so one partial chunk at the large sizes tests them as well.
input() {
	local i
	for i in $(seq 6); do
		head -c 262144 /dev/zero
		openssl rand 262144
	done >"$1"
}

t_file() {
	local chunk=$1 codec=$2 cipher=$3 keyargs=() rargs=()
	newdir "file-$chunk-$codec-$cipher"
	if [ "$cipher" != none ]; then
		psk "$D/key"
		keyargs=(--key-file "$D/key" --encrypt "$cipher")
		rargs=(--key-file "$D/key")
	fi
	"$SEND" -q --chunk-size "$chunk" --compress "$codec" "${keyargs[@]}" \
		--output "$D/s.vms" "$tmp/in.bin"
	"$RECV" -q -i "$D/s.vms" "${rargs[@]}" "$D/out"
	cmp "$tmp/in.bin" "$D/out"
}

t_net() {
	local chunk=$1 codec=$2 cipher=$3 port rc auth=()
	newdir "net-$chunk-$codec-$cipher"
	# an authenticated receiver requires encryption: plain streams use an
	# unauthenticated loopback session
	if [ "$cipher" != none ]; then
		psk "$D/psk"
		auth=(--psk-file "$D/psk")
	fi
	(
		rc=0
		"$RECV" -q --listen 127.0.0.1:0 --port-file "$D/port" "${auth[@]}" \
			"$D/out" 2>"$D/recv.err" || rc=$?
		echo "$rc" >"$D/recv.rc.tmp" && mv "$D/recv.rc.tmp" "$D/recv.rc"
	) &
	BG+=("$!")
	port=$(wait_port "$D/port")
	"$SEND" -q --to "127.0.0.1:$port" "${auth[@]}" --chunk-size "$chunk" \
		--compress "$codec" --encrypt "$cipher" "$tmp/in.bin"
	rc=$(wait_rc "$D/recv.rc" "${BG[-1]}")
	[ "$rc" = 0 ] || fail "receiver exit $rc: $(cat "$D/recv.err")"
	cmp "$tmp/in.bin" "$D/out"
}

input "$tmp/in.bin"
T0=$(date +%s)
PASS=defaults
# one test per chunk size, each covering codecs x ciphers x {file, network}
t_all() {
	local chunk=$1 codec cipher
	for codec in none zstd zstd:19 auto; do
		for cipher in none aes-256-gcm chacha20-poly1305; do
			t_file "$chunk" "$codec" "$cipher" || fail "file: $chunk $codec $cipher"
			t_net "$chunk" "$codec" "$cipher" || fail "network: $chunk $codec $cipher"
		done
	done
}
for chunk in 4K 8K 16K 32K 64K 128K 256K 512K 1M 2M 4M 8M 16M; do
	run "chunk $chunk: every codec x cipher, file and network, default budgets" t_all "$chunk"
done
echo "e2e_budgets: $skipped skipped, $(($(date +%s) - T0)) s"
echo "e2e_budgets: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
