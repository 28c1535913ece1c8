#!/usr/bin/env bash
# demo.sh: a file round trip through vmstream, explained as it goes.
#
# Generates ~256 MiB of VM-memory-like data (zero pages, repeated text,
# random pages), sends it to a stream file, verifies the file with
# vmstream-inspect --verify, receives it back and compares bit for bit.
#
# Run from anywhere after building, e.g.
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build
#   bash scripts/demo.sh [SIZE_MIB]
# env: VMS_BUILD_DIR (default: build/ in the repository), VMS_DEMO_DIR (work
# directory, default a temporary one that is removed at the end).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${VMS_BUILD_DIR:-$root/build}
size_mib=${1:-256}
[[ $size_mib =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: SIZE_MIB must be a positive integer" >&2; exit 2; }

tool() { # tool NAME: path of a built tool
	local name=$1 dir found
	for dir in "$build/bin" "$build/tools" "$build"; do
		if [ -x "$dir/$name" ]; then
			printf '%s\n' "$dir/$name"
			return
		fi
	done
	found=$(find "$build" -type f -name "$name" -perm -u+x 2>/dev/null | head -n 1)
	if [ -z "$found" ]; then
		echo "demo.sh: $name not found under $build; build first:" >&2
		echo "  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build" >&2
		exit 1
	fi
	printf '%s\n' "$found"
}
SEND=$(tool vmstream-send)
RECV=$(tool vmstream-recv)
INSPECT=$(tool vmstream-inspect)
command -v python3 >/dev/null || { echo "demo.sh: python3 is needed" >&2; exit 1; }

if [ -n "${VMS_DEMO_DIR:-}" ]; then
	work=$VMS_DEMO_DIR
	mkdir -p "$work"
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/vmstream-demo.XXXXXX")
	trap 'rm -rf "$work"' EXIT
fi
rm -f "$work/guest.mem" "$work/guest.vms" "$work/restored.mem"

step() { printf '\n== %s\n' "$*"; }

step "1. Generate ${size_mib} MiB of VM-memory-like data ($work/guest.mem)"
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

step "2. Send it to a stream file: vmstream-send --output guest.vms guest.mem"
"$SEND" --quiet --json="$work/send.json" --output "$work/guest.vms" "$work/guest.mem"
python3 - "$work/send.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print("   %d bytes in -> %d bytes of stream, %d records, %.2f s (%.0f MiB/s)" % (
    j["bytes_in"], j["bytes_on_wire"], j["records"], j["seconds"],
    j["rate_bytes_per_sec"] / 1048576))
EOF

step "3. Verify the stream file: vmstream-inspect --verify guest.vms"
"$INSPECT" --verify "$work/guest.vms" >"$work/listing.txt"
"$INSPECT" --verify --json "$work/guest.vms" >"$work/listing.json"
sed -n '1,9p' "$work/listing.txt" | sed 's/^/   /'
echo "   ..."
grep -E '^ +[0-9]+ +[0-9]+ (DEVICE_BEGIN|DEVICE_END|EOS) ' "$work/listing.txt" | sed 's/^/   /'
tail -n 1 "$work/listing.txt" | sed 's/^/   /'
python3 - "$work/listing.json" "$work/digest" <<'EOF'
import collections, json, sys
j = json.load(open(sys.argv[1]))
types = collections.Counter(r["type"] for r in j["records"])
print("   records by type: " + ", ".join("%s %d" % kv for kv in sorted(types.items())))
end = [r for r in j["records"] if r["type"] == "DEVICE_END"][0]
open(sys.argv[2], "w").write(end["digest_xxh3"])
EOF
digest=$(cat "$work/digest")
echo "   verified device digest (XXH3-64, from DEVICE_END): $digest"

step "4. Receive it back: vmstream-recv --input guest.vms restored.mem"
"$RECV" --quiet --json="$work/recv.json" --input "$work/guest.vms" "$work/restored.mem"
python3 - "$work/recv.json" "$digest" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["digest_xxh3"] == sys.argv[2], (j["digest_xxh3"], sys.argv[2])
print("   %d bytes out, %.2f s (%.0f MiB/s), digest %s matches" % (
    j["bytes_out"], j["seconds"], j["rate_bytes_per_sec"] / 1048576, j["digest_xxh3"]))
EOF
echo "   disk use: input $(du -k "$work/guest.mem" | cut -f1) KiB," \
	"restored $(du -k "$work/restored.mem" | cut -f1) KiB (zero blocks are holes)"

step "5. Compare: cmp guest.mem restored.mem"
cmp "$work/guest.mem" "$work/restored.mem"
echo "   identical ($(stat -c %s "$work/restored.mem") bytes)"

step "6. Damage one byte of the stream and try again"
cp "$work/guest.vms" "$work/damaged.vms"
python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(3 * 1048576 + 777)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x10]))' "$work/damaged.vms"
rc=0
"$RECV" --quiet --input "$work/damaged.vms" "$work/damaged.mem" 2>"$work/damaged.err" || rc=$?
sed 's/^/   /' "$work/damaged.err"
echo "   exit status $rc; damaged.mem exists: $([ -e "$work/damaged.mem" ] && echo yes || echo no)"
[ "$rc" -eq 4 ] && [ ! -e "$work/damaged.mem" ]

printf '\ndemo.sh: OK: %s MiB sent, verified, received and compared bit for bit.\n' "$size_mib"
