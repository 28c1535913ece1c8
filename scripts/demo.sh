#!/usr/bin/env bash
# demo.sh: what vmstream does, explained as it goes.
#
# Part 1, network: generates ~256 MiB of VM-memory-like data, makes a
# pre-shared key, starts vmstream-recv --listen on loopback, sends the data
# with vmstream-send --to (TLS 1.3 PSK authentication, adaptive zstd,
# AES-256-GCM records), and shows what happened: sizes, compression ratio,
# rate, I/O engine, lanes, the authenticated peer, the verified digest next
# to `xxhsum -H3` of the input, and a bit-for-bit comparison.
# Part 2, files: the same data as a self-verifying stream file, checked with
# vmstream-inspect --verify, received back, then damaged and rejected.
#
# Run from anywhere after building, e.g.
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build
#   bash scripts/demo.sh [SIZE_MIB]
# env: VMS_BUILD_DIR (default: build/ in the repository), VMS_DEMO_DIR (work
# directory, default a temporary one that is removed at the end), VMS_IO
# (uring|posix: force an I/O engine).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VMS_BUILD_DIR:-$root/build}
size_mib=${1:-256}
[[ $size_mib =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: SIZE_MIB must be a positive integer" >&2; exit 2; }

tool() { # tool NAME [optional]: path of a built tool
	local name=$1 dir found
	for dir in "$build/bin" "$build/tools" "$build"; do
		if [ -x "$dir/$name" ]; then
			printf '%s\n' "$dir/$name"
			return
		fi
	done
	found=$(find "$build" -type f -name "$name" -perm -u+x 2>/dev/null | head -n 1)
	if [ -z "$found" ]; then
		[ -n "${2:-}" ] && return
		echo "demo.sh: $name not found under $build; build first:" >&2
		echo "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build" >&2
		exit 1
	fi
	printf '%s\n' "$found"
}
SEND=$(tool vmstream-send)
RECV=$(tool vmstream-recv)
INSPECT=$(tool vmstream-inspect)
BENCH=$(tool vmstream-bench optional)
for c in python3 openssl; do
	command -v "$c" >/dev/null || { echo "demo.sh: $c is needed" >&2; exit 1; }
done

if [ -n "${VMS_DEMO_DIR:-}" ]; then
	work=$VMS_DEMO_DIR
	mkdir -p "$work"
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/vmstream-demo.XXXXXX")
fi
recv_pid=
cleanup() {
	if [ -n "$recv_pid" ]; then
		kill "$recv_pid" 2>/dev/null || true
		wait "$recv_pid" 2>/dev/null || true
	fi
	if [ -z "${VMS_DEMO_DIR:-}" ]; then
		rm -rf "$work"
	fi
}
trap cleanup EXIT
for f in guest.mem guest.vms restored.mem received.mem psk.hex port send.json recv.json \
	send.err recv.err listing.txt damaged.vms damaged.mem damaged.err; do
	rm -f "${work:?}/$f"
done

step() { printf '\n== %s\n' "$*"; }

step "1. Generate ${size_mib} MiB of VM-memory-like data ($work/guest.mem)"
if [ -n "$BENCH" ]; then
	"$BENCH" gen --profile mixed --size "${size_mib}M" >"$work/guest.mem"
	echo "   vmstream-bench gen --profile mixed: 4 KiB pages of zeros, text, x86-like code,"
	echo "   pointer tables and random bytes (zstd -1 compresses it about 2:1)"
else
	python3 - "$work/guest.mem" "$size_mib" <<'EOF'
import os, random, sys
path, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(2024)
text = (b"GET /index.html HTTP/1.1\r\nHost: guest.example\r\n\r\n"
        b"kernel: eth0: link up, 10000 Mbps, full duplex\n") * 64
zero = bytes(4096)
counts = {"zero": 0, "text": 0, "random": 0}
with open(path, "wb") as f:
    batch = []
    for page in range(mib * 256):
        # Runs of similar pages, like real guest memory: free (zero) memory,
        # page cache full of text, and compressed or encrypted data.
        if page % 64 == 0:
            kind = rng.choices(["zero", "text", "random"], [45, 25, 30])[0]
        counts[kind] += 1
        if kind == "zero":
            batch.append(zero)
        elif kind == "text":
            off = rng.randrange(0, len(text) - 4096)
            batch.append(text[off:off + 4096])
        else:
            batch.append(os.urandom(4096))
        if len(batch) == 1024:
            f.write(b"".join(batch))
            batch = []
    f.write(b"".join(batch))
total = sum(counts.values())
print("   %d pages of 4 KiB: %d zero (%.0f%%), %d text (%.0f%%), %d random (%.0f%%)" % (
    total, counts["zero"], 100.0 * counts["zero"] / total, counts["text"],
    100.0 * counts["text"] / total, counts["random"], 100.0 * counts["random"] / total))
EOF
fi

# ---------------------------------------------------------------------------
printf '\n######## Part 1: over the network (loopback here; two hosts work the same)\n'

step "2. A pre-shared key for TLS 1.3 (both hosts hold the same file, mode 0600)"
(umask 077 && openssl rand -hex 32 >"$work/psk.hex")
echo "   openssl rand -hex 32 > psk.hex; chmod 600 psk.hex  ->  $(stat -c '%A' "$work/psk.hex") psk.hex"

step "3. Start the receiver: vmstream-recv --listen 127.0.0.1:0 --psk-file psk.hex received.mem"
"$RECV" --quiet --listen 127.0.0.1:0 --port-file "$work/port" --psk-file "$work/psk.hex" \
	--json="$work/recv.json" "$work/received.mem" 2>"$work/recv.err" &
recv_pid=$!
for _ in $(seq 200); do
	[ -s "$work/port" ] && break
	sleep 0.05
done
if [ ! -s "$work/port" ]; then
	cat "$work/recv.err" >&2
	echo "demo.sh: the receiver did not start" >&2
	exit 1
fi
port=$(cat "$work/port")
echo "   listening on 127.0.0.1:$port (port chosen by the system, written to --port-file)"

step "4. Send: vmstream-send --to 127.0.0.1:$port --psk-file psk.hex --compress auto --encrypt aes-256-gcm guest.mem"
send_rc=0
"$SEND" --quiet --to "127.0.0.1:$port" --psk-file "$work/psk.hex" --compress auto \
	--encrypt aes-256-gcm --json="$work/send.json" "$work/guest.mem" 2>"$work/send.err" ||
	send_rc=$?
recv_rc=0
wait "$recv_pid" || recv_rc=$?
recv_pid=
sed 's/^/   /' "$work/send.err" "$work/recv.err"
if [ "$send_rc" -ne 0 ] || [ "$recv_rc" -ne 0 ]; then
	echo "demo.sh: transfer failed (send exit $send_rc, receive exit $recv_rc)" >&2
	exit 1
fi
python3 - "$work/send.json" "$work/recv.json" <<'EOF'
import json, sys
s, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
mib = 1048576.0
print("   sent      %10d bytes -> %d bytes on the wire (ratio %.2f raw/wire), %d records" % (
    s["bytes_in"], s["bytes_on_wire"], s["ratio"], s["records"]))
print("   received  %10d bytes <- %d bytes on the wire, verified, synced, renamed" % (
    r["bytes_out"], r["bytes_on_wire"]))
print("   time      %.2f s, %.0f MiB/s of data; CPU %.2f s per GB (sender), %.2f (receiver)" % (
    s["seconds"], s["rate_bytes_per_sec"] / mib, s["cpu_s_per_gb"] or 0, r["cpu_s_per_gb"] or 0))
print("   session   %s lane(s), I/O engine %s, records %s, compression %s" % (
    s["lanes"], s["engine"], s["cipher"], s["compress"]))
print("   peers     the receiver authenticated %s; the sender got its acknowledgement: %s" % (
    r["peer"], "yes" if s["acknowledged"] else "no"))
assert s["acknowledged"] is True and s["digest_xxh3"] == r["digest_xxh3"]
EOF
digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest_xxh3"])' "$work/recv.json")

step "5. Check: the verified digest is XXH3-64 of the input, and the output is identical"
echo "   DEVICE_END digest verified by the receiver: $digest"
if command -v xxhsum >/dev/null; then
	xxh=$(xxhsum -H3 "$work/guest.mem" 2>/dev/null | grep -Eo '[0-9a-f]{16}' | tail -n 1)
	echo "   xxhsum -H3 guest.mem:                      $xxh"
	if [ "$xxh" != "$digest" ]; then
		echo "demo.sh: the digests differ" >&2
		exit 1
	fi
	echo "   they match"
else
	echo "   (xxhsum is not installed: no independent digest)"
fi
cmp "$work/guest.mem" "$work/received.mem"
echo "   cmp guest.mem received.mem: identical ($(stat -c %s "$work/received.mem") bytes)"
rm -f "$work/received.mem"

# ---------------------------------------------------------------------------
printf '\n######## Part 2: a self-verifying stream file\n'

step "6. Send it to a stream file: vmstream-send --compress auto --output guest.vms guest.mem"
"$SEND" --quiet --compress auto --json="$work/send.json" --output "$work/guest.vms" "$work/guest.mem"
python3 - "$work/send.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print("   %d bytes in -> %d bytes of stream (ratio %.2f), %d records, %.2f s (%.0f MiB/s)" % (
    j["bytes_in"], j["bytes_on_wire"], j["ratio"], j["records"], j["seconds"],
    j["rate_bytes_per_sec"] / 1048576))
EOF

step "7. Verify the stream file: vmstream-inspect --verify guest.vms"
"$INSPECT" --verify "$work/guest.vms" >"$work/listing.txt"
sed -n '1,9p' "$work/listing.txt" | sed 's/^/   /'
echo "   ..."
grep -E '^ +[0-9]+ +[0-9]+ (DEVICE_BEGIN|DEVICE_END|EOS) ' "$work/listing.txt" | sed 's/^/   /'
tail -n 1 "$work/listing.txt" | sed 's/^/   /'

step "8. Receive it back (vmstream-recv --input guest.vms restored.mem) and compare"
"$RECV" --quiet --json="$work/recv.json" --input "$work/guest.vms" "$work/restored.mem"
python3 - "$work/recv.json" "$digest" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["digest_xxh3"] == sys.argv[2], (j["digest_xxh3"], sys.argv[2])
print("   %d bytes out, %.2f s (%.0f MiB/s), digest %s, the same as over the network" % (
    j["bytes_out"], j["seconds"], j["rate_bytes_per_sec"] / 1048576, j["digest_xxh3"]))
EOF
cmp "$work/guest.mem" "$work/restored.mem"
echo "   cmp: identical; disk use: input $(du -k "$work/guest.mem" | cut -f1) KiB," \
	"restored $(du -k "$work/restored.mem" | cut -f1) KiB (zero blocks are holes)"

step "9. Damage one byte of the stream and try again"
cp "$work/guest.vms" "$work/damaged.vms"
python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(min(3 * 1048576 + 777, f.seek(0, 2) // 2))
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x10]))' "$work/damaged.vms"
rc=0
"$RECV" --quiet --input "$work/damaged.vms" "$work/damaged.mem" 2>"$work/damaged.err" || rc=$?
sed 's/^/   /' "$work/damaged.err"
echo "   exit status $rc; damaged.mem exists: $([ -e "$work/damaged.mem" ] && echo yes || echo no)"
[ "$rc" -eq 4 ] && [ ! -e "$work/damaged.mem" ]

printf '\ndemo.sh: OK: %s MiB sent over an authenticated, encrypted session and as a file,\n' "$size_mib"
printf 'verified (digest %s = xxhsum -H3), received and compared bit for bit.\n' "$digest"
