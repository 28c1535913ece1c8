#!/usr/bin/env bash
# End-to-end tests of the stage options of the tools in file mode:
# vmstream-send --compress/--encrypt/--key-file/--threads/--memory,
# vmstream-recv --key-file/--threads/--memory, vmstream-inspect --key-file.
#
#  - bit-exact round trips for every --compress x --encrypt combination on
#    generated profiles (random, zeros, sparse, text, mixed) at sizes 0, 1,
#    chunk-1, chunk, chunk+1 and several chunks (64 KiB chunks; a subset with
#    the default 1 MiB chunk and with --threads 0);
#  - the stream says what it is (inspect: cipher, codecs; no plaintext
#    visible when encrypted; compression really shrinks compressible data);
#  - key failures: wrong key, flipped ciphertext byte, missing key, key file
#    with bad content or group-readable: exit 5, one VMS_E line, no output;
#  - usage errors: bad --compress/--encrypt/--threads/--memory values and
#    inconsistent combinations: exit 2.
#
# Tools: $VMS_SEND, $VMS_RECV, $VMS_INSPECT, $VMS_BENCH (set by CTest), else
# build/bin/. Data: `vmstream-bench gen` when built, else python3.
# Last line: "e2e_stages: N passed, N failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

find_tool() { # find_tool VAR NAME [optional]
	local var=$1 name=$2 dir
	if [ -n "${!var:-}" ]; then
		printf '%s\n' "${!var}"
		return
	fi
	for dir in "${VMS_TOOLS_DIR:-}" "${VMS_BUILD_DIR:-$root/build}/bin" "$root/build/bin"; do
		if [ -n "$dir" ] && [ -x "$dir/$name" ]; then
			printf '%s\n' "$dir/$name"
			return
		fi
	done
	if [ -n "${3:-}" ]; then
		return
	fi
	echo "e2e_stages: $name not found; build first or set $var" >&2
	exit 77
}
SEND=$(find_tool VMS_SEND vmstream-send)
RECV=$(find_tool VMS_RECV vmstream-recv)
INSPECT=$(find_tool VMS_INSPECT vmstream-inspect)
BENCH=$(find_tool VMS_BENCH vmstream-bench optional)
command -v python3 >/dev/null || { echo "e2e_stages: python3 missing" >&2; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2e_stages.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
# Each test runs in a subshell with `set -e` (see e2e_file.sh for why it is
# asynchronous): its first failing command fails the test.
run() {
	local name=$1 rc=0
	shift
	(set -e; "$@") >"$tmp/log" 2>&1 &
	wait $! || rc=$?
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name (exit $rc)"
		sed 's/^/    /' "$tmp/log"
	fi
}
fail() { echo "$*" >&2; return 1; }
expect_rc() { # expect_rc WANT CMD...
	local want=$1 rc=0
	shift
	"$@" || rc=$?
	[ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc: $*"
}
one_error_line() { # one_error_line FILE CODE
	local n
	n=$(wc -l <"$1")
	[ "$n" -eq 1 ] || fail "expected one stderr line, got $n: $(cat "$1")"
	grep -Eq "^vmstream-[a-z]+: error: $2: .+" "$1" || fail "expected $2 in: $(cat "$1")"
}
no_leftovers() { # no_leftovers DIR
	local left
	left=$(find "$1" -maxdepth 1 -name '.*.vms-*' | head -n 1)
	[ -z "$left" ] || fail "temporary file left behind: $left"
}
newkey() { # newkey FILE: a fresh 0600 key file
	(umask 077 && python3 -c 'import os; print(os.urandom(32).hex())' >"$1")
}

# ---- data ---------------------------------------------------------------

CHUNK=65536
SIZES="0 1 $((CHUNK - 1)) $CHUNK $((CHUNK + 1)) $((5 * CHUNK + 17))"
PROFILES="random zeros sparse text mixed"
MAXSIZE=$((4 * 1048576 + 4099)) # also the "several chunks" size at 1 MiB chunks
data="$tmp/data"
mkdir "$data"

gen_profile() { # gen_profile PROFILE FILE SIZE
	if [ -n "$BENCH" ] && "$BENCH" gen --profile "$1" --size "$3" >"$2" 2>/dev/null; then
		return
	fi
	python3 - "$1" "$2" "$3" <<'EOF'
import os, random, sys
profile, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(7)
words = [b"kernel", b"page", b"migration", b"vfio", b"device", b"state", b"the", b"of",
         b"GET /index.html", b"eth0: link up", b"0x7fffd000", b"root", b"\n"]
def text(n):
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])
out = bytearray()
page = 0
while len(out) < size:
    if profile == "random":
        p = os.urandom(4096)
    elif profile == "zeros":
        p = bytes(4096)
    elif profile == "text":
        p = text(4096)
    else:
        r = rng.random()
        zero_share = 0.8 if profile == "sparse" else 0.3
        if r < zero_share:
            p = bytes(4096)
        elif r < zero_share + (1 - zero_share) / 2:
            p = text(4096)
        else:
            p = os.urandom(4096)
    out += p
    page += 1
open(path, "wb").write(bytes(out[:size]))
EOF
}

for p in $PROFILES; do
	gen_profile "$p" "$data/$p" "$MAXSIZE"
	[ "$(stat -c %s "$data/$p")" -eq "$MAXSIZE" ] || { echo "e2e_stages: generating $p failed" >&2; exit 1; }
	for s in $SIZES; do
		head -c "$s" "$data/$p" >"$data/$p.$s"
	done
done
newkey "$data/key"
newkey "$data/key2"

# ---- round trips ----------------------------------------------------------

# roundtrip PROFILE COMPRESS ENCRYPT: every size of SIZES, 64 KiB chunks.
roundtrip() {
	local p=$1 comp=$2 enc=$3 d="$tmp/rt" s keyargs=() want_cipher
	rm -rf "$d" && mkdir "$d"
	if [ "$enc" != none ]; then
		keyargs=(--key-file "$data/key")
	fi
	for s in $SIZES; do
		"$SEND" -q --chunk-size 64K --compress "$comp" --encrypt "$enc" "${keyargs[@]}" \
			--json="$d/send.json" -o "$d/s.vms" "$data/$p.$s"
		"$RECV" -q "${keyargs[@]}" --json="$d/recv.json" -i "$d/s.vms" "$d/out"
		cmp "$data/$p.$s" "$d/out"
		"$INSPECT" --verify "${keyargs[@]}" "$d/s.vms" >"$d/listing"
		grep -q '^verdict: *OK' "$d/listing"
		want_cipher=$enc
		grep -q "^cipher: *$want_cipher\$" "$d/listing" || fail "listing says: $(grep cipher "$d/listing")"
		python3 - "$d/send.json" "$d/recv.json" "$s" "$enc" "$comp" <<'EOF'
import json, sys
snd, rcv = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
size, enc, comp = int(sys.argv[3]), sys.argv[4], sys.argv[5]
assert snd["status"] == "ok" and rcv["status"] == "ok", (snd, rcv)
assert snd["bytes_in"] == size and rcv["bytes_out"] == size, (snd, rcv)
assert snd["cipher"] == enc and rcv["cipher"] == enc, (snd["cipher"], rcv["cipher"])
assert snd["compress"] == comp, snd["compress"]
assert snd["mode"] == "file" and rcv["mode"] == "file"
assert snd["digest_xxh3"] == rcv["digest_xxh3"], (snd["digest_xxh3"], rcv["digest_xxh3"])
assert snd["bytes_on_wire"] == rcv["bytes_on_wire"]
EOF
		rm -f "$d/s.vms" "$d/out"
	done
	no_leftovers "$d"
}

for p in $PROFILES; do
	for comp in none zstd auto; do
		for enc in none aes-256-gcm chacha20-poly1305; do
			run "roundtrip $p compress=$comp encrypt=$enc" roundtrip "$p" "$comp" "$enc"
		done
	done
done

# Other codec levels, default chunk size (1 MiB) with several chunks, worker
# threads off and on, a small memory budget.
t_levels_threads() {
	local d="$tmp/lv" p comp th
	rm -rf "$d" && mkdir "$d"
	for p in mixed text random; do
		for comp in zstd:-7 zstd:3 zstd:19; do
			for th in 0 1 4 auto; do
				"$SEND" -q --compress "$comp" --encrypt chacha20-poly1305 \
					--key-file "$data/key" --threads "$th" --memory 16M \
					-o "$d/s.vms" "$data/$p"
				"$RECV" -q --key-file "$data/key" --threads "$th" --memory 16M \
					-i "$d/s.vms" "$d/out"
				cmp "$data/$p" "$d/out"
				rm -f "$d/s.vms" "$d/out"
			done
		done
	done
}
run "zstd levels -7/3/19 x threads 0/1/4/auto, 1 MiB chunks, --memory 16M" t_levels_threads

# The stream is what the options say: compressible data shrinks, zero chunks
# are elided, encrypted streams show no plaintext, --key-file alone selects
# the preferred cipher.
t_stream_contents() {
	local d="$tmp/sc"
	rm -rf "$d" && mkdir "$d"
	"$SEND" -q --compress zstd -o "$d/z.vms" "$data/text"
	"$SEND" -q -o "$d/n.vms" "$data/text"
	[ "$(stat -c %s "$d/z.vms")" -lt $(($(stat -c %s "$d/n.vms") / 2)) ] ||
		fail "zstd did not halve text: $(stat -c %s "$d/z.vms") vs $(stat -c %s "$d/n.vms")"
	"$INSPECT" --json "$d/z.vms" | python3 -c '
import json, sys
j = json.load(sys.stdin)
data = [r for r in j["records"] if r["type"] == "DATA"]
assert data and all(r["codec"] != 0 for r in data), data
assert all(r["wire_len"] < r["raw_len"] for r in data), data'
	# auto on random data stores (does not grow) the records
	"$SEND" -q --compress auto -o "$d/r.vms" "$data/random"
	[ "$(stat -c %s "$d/r.vms")" -lt $(($(stat -c %s "$data/random") + 4096)) ]
	# zeros: ZERO records, tiny stream
	"$SEND" -q --compress auto --key-file "$data/key" -o "$d/zero.vms" "$data/zeros"
	[ "$(stat -c %s "$d/zero.vms")" -lt 4096 ] || fail "zeros not elided"
	# no plaintext in an encrypted stream (and the check itself works)
	grep -q 'migration' "$d/n.vms"
	"$SEND" -q --key-file "$data/key" -o "$d/e.vms" "$data/text"
	if grep -q 'migration' "$d/e.vms"; then fail "plaintext visible in encrypted stream"; fi
	# --key-file alone: encrypted with the preferred cipher
	"$INSPECT" "$d/e.vms" | grep -Eq '^cipher: *(aes-256-gcm|chacha20-poly1305)$'
	"$INSPECT" "$d/e.vms" | grep -q '^key source: *key-file$'
	# framing-only listing needs no key; --verify does
	"$INSPECT" "$d/e.vms" | grep -q '^verdict: *OK'
	expect_rc 5 "$INSPECT" --verify "$d/e.vms" >/dev/null 2>"$d/err"
	grep -q VMS_EKEY "$d/err"
	"$INSPECT" --verify --key-file "$data/key" --json "$d/e.vms" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["verdict"]["status"] == "ok" and j["verdict"]["checks"] == "full", j["verdict"]'
	# pipe mode with encryption and compression
	"$SEND" -q --compress auto --key-file "$data/key" -o - <"$data/mixed" |
		"$RECV" -q --key-file "$data/key" -i - >"$d/out"
	cmp "$data/mixed" "$d/out"
}
run "stream contents: compression, zero elision, no plaintext, inspect --key-file" t_stream_contents

# ---- key failures: exit 5, one error line, no output ---------------------

t_wrong_key() {
	local d="$tmp/wk" enc
	rm -rf "$d" && mkdir "$d"
	for enc in aes-256-gcm chacha20-poly1305; do
		"$SEND" -q --compress auto --encrypt "$enc" --key-file "$data/key" -o "$d/s.vms" \
			"$data/mixed"
		expect_rc 5 "$RECV" -q --key-file "$data/key2" -i "$d/s.vms" "$d/out" 2>"$d/err"
		one_error_line "$d/err" VMS_EAUTH
		[ ! -e "$d/out" ]
		expect_rc 5 "$INSPECT" --verify --key-file "$data/key2" "$d/s.vms" >/dev/null 2>"$d/err"
		one_error_line "$d/err" VMS_EAUTH
		# to stdout: nothing of the device is written either
		expect_rc 5 "$RECV" -q --key-file "$data/key2" -i "$d/s.vms" >"$d/stdout" 2>"$d/err"
		[ ! -s "$d/stdout" ]
		rm -f "$d/s.vms"
	done
	no_leftovers "$d"
}
run "wrong key: exit 5, VMS_EAUTH, no output" t_wrong_key

t_flipped_byte() {
	local d="$tmp/fb" enc pos
	rm -rf "$d" && mkdir "$d"
	for enc in aes-256-gcm chacha20-poly1305; do
		for comp in none zstd; do
			"$SEND" -q --chunk-size 64K --compress "$comp" --encrypt "$enc" \
				--key-file "$data/key" -o "$d/s.vms" "$data/mixed.$((5 * CHUNK + 17))"
			# one byte in the middle of the third DATA record's ciphertext
			pos=$("$INSPECT" --json "$d/s.vms" | python3 -c '
import json, sys
r = json.load(sys.stdin)["records"]
data = [i for i, x in enumerate(r) if x["type"] == "DATA"]
i = data[2]
hdr = r[i + 1]["stream_pos"] - r[i]["stream_pos"] - r[i]["wire_len"]
print(r[i]["stream_pos"] + hdr + r[i]["wire_len"] // 2)')
			python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(-1, 1); f.write(bytes([b[0] ^ 0x01]))' \
				"$d/s.vms" "$pos"
			expect_rc 5 "$RECV" -q --key-file "$data/key" -i "$d/s.vms" "$d/out" 2>"$d/err"
			one_error_line "$d/err" VMS_EAUTH
			grep -q 'record 3 ' "$d/err" || fail "expected record 3 named: $(cat "$d/err")"
			[ ! -e "$d/out" ]
			expect_rc 5 "$INSPECT" --verify --key-file "$data/key" "$d/s.vms" >/dev/null 2>&1
			rm -f "$d/s.vms"
		done
	done
	no_leftovers "$d"
}
run "flipped ciphertext byte: exit 5, VMS_EAUTH naming the record, no output" t_flipped_byte

t_missing_key() {
	local d="$tmp/mk"
	rm -rf "$d" && mkdir "$d"
	"$SEND" -q --key-file "$data/key" -o "$d/s.vms" "$data/text"
	expect_rc 5 "$RECV" -q -i "$d/s.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EKEY
	grep -q 'no key was given' "$d/err"
	[ ! -e "$d/out" ]
	# key file that does not exist
	expect_rc 5 "$RECV" -q --key-file "$d/nope" -i "$d/s.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EKEY
	grep -q "$d/nope" "$d/err"
	expect_rc 5 "$SEND" -q --key-file "$d/nope" -o "$d/s2.vms" "$data/text" 2>"$d/err"
	one_error_line "$d/err" VMS_EKEY
	[ ! -e "$d/out" ] && [ ! -e "$d/s2.vms" ]
	# a key given for a stream that is not encrypted is refused too (a
	# downgrade would otherwise go unnoticed)
	"$SEND" -q -o "$d/plain.vms" "$data/text"
	expect_rc 5 "$RECV" -q --key-file "$data/key" -i "$d/plain.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EKEY
	[ ! -e "$d/out" ]
	no_leftovers "$d"
}
run "missing key: exit 5, VMS_EKEY, no output" t_missing_key

t_bad_key_file() {
	local d="$tmp/bk" content
	rm -rf "$d" && mkdir "$d"
	"$SEND" -q --key-file "$data/key" -o "$d/s.vms" "$data/text"
	for content in 'zz' "$(head -c 63 "$data/key")" "$(head -c 64 "$data/key")00" \
		"$(head -c 62 "$data/key")xy" ''; do
		printf '%s\n' "$content" >"$d/badkey"
		chmod 600 "$d/badkey"
		expect_rc 5 "$RECV" -q --key-file "$d/badkey" -i "$d/s.vms" "$d/out" 2>"$d/err"
		one_error_line "$d/err" VMS_EKEY
		grep -q '64 hex digits' "$d/err" || fail "unclear message: $(cat "$d/err")"
		grep -q "$d/badkey" "$d/err"
		expect_rc 5 "$SEND" -q --key-file "$d/badkey" -o "$d/s2.vms" "$data/text" 2>"$d/err"
		one_error_line "$d/err" VMS_EKEY
		expect_rc 5 "$INSPECT" --verify --key-file "$d/badkey" "$d/s.vms" >/dev/null 2>"$d/err"
		one_error_line "$d/err" VMS_EKEY
	done
	# two newlines, CRLF
	printf '%s\n\n' "$(head -c 64 "$data/key")" >"$d/badkey"
	expect_rc 5 "$RECV" -q --key-file "$d/badkey" -i "$d/s.vms" "$d/out" 2>"$d/err"
	printf '%s\r\n' "$(head -c 64 "$data/key")" >"$d/badkey"
	expect_rc 5 "$RECV" -q --key-file "$d/badkey" -i "$d/s.vms" "$d/out" 2>"$d/err"
	# group/other readable: refused with the fix in the message
	cp "$data/key" "$d/shared"
	chmod 644 "$d/shared"
	expect_rc 5 "$RECV" -q --key-file "$d/shared" -i "$d/s.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EKEY
	grep -q 'chmod 600' "$d/err"
	expect_rc 5 "$SEND" -q --key-file "$d/shared" -o "$d/s2.vms" "$data/text" 2>"$d/err"
	grep -q 'chmod 600' "$d/err"
	# a directory
	expect_rc 5 "$RECV" -q --key-file "$d" -i "$d/s.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EKEY
	[ ! -e "$d/out" ] && [ ! -e "$d/s2.vms" ]
	no_leftovers "$d"
}
run "key file with bad content, loose mode or not a file: exit 5, clear message" t_bad_key_file

# ---- usage errors: exit 2 ---------------------------------------------------

t_usage() {
	local d="$tmp/usage" bad
	rm -rf "$d" && mkdir "$d"
	for bad in '' lz4 zstd: zstd:20 zstd:-8 zstd:x zstd:1.5 'zstd: 1' zstd:+1 ZSTD auto:1 \
		none:1 zstd:99999999999; do
		expect_rc 2 "$SEND" --compress "$bad" -o "$d/s.vms" "$data/text" 2>"$d/err"
		one_error_line "$d/err" VMS_EINVAL
		grep -q -- '--compress' "$d/err"
	done
	for bad in '' aes AES-256-GCM aes-128-gcm chacha20 rot13; do
		expect_rc 2 "$SEND" --encrypt "$bad" --key-file "$data/key" -o "$d/s.vms" \
			"$data/text" 2>"$d/err"
		one_error_line "$d/err" VMS_EINVAL
		grep -q -- '--encrypt' "$d/err"
	done
	for bad in -1 65 x 1.5 '' 4K; do
		expect_rc 2 "$SEND" --threads "$bad" -o "$d/s.vms" "$data/text" 2>"$d/err"
		one_error_line "$d/err" VMS_EINVAL
		expect_rc 2 "$RECV" --threads "$bad" -i "$d/x" "$d/out" 2>"$d/err"
	done
	for bad in 0 1 1K 63K x 64KB -1M ''; do
		expect_rc 2 "$SEND" --memory "$bad" -o "$d/s.vms" "$data/text" 2>"$d/err"
		one_error_line "$d/err" VMS_EINVAL
		expect_rc 2 "$RECV" --memory "$bad" -i "$d/x" "$d/out" 2>"$d/err"
	done
	# inconsistent combinations
	expect_rc 2 "$SEND" --encrypt aes-256-gcm -o "$d/s.vms" "$data/text" 2>"$d/err"
	grep -q -- '--key-file' "$d/err"
	expect_rc 2 "$SEND" --encrypt none --key-file "$data/key" -o "$d/s.vms" "$data/text" 2>"$d/err"
	expect_rc 2 "$SEND" --lanes 2 -o "$d/s.vms" "$data/text" 2>"$d/err"
	expect_rc 2 "$SEND" --psk-file "$data/key" -o "$d/s.vms" "$data/text" 2>"$d/err"
	grep -q 'network option' "$d/err"
	expect_rc 2 "$RECV" --psk-file "$data/key" -i "$d/x" "$d/out" 2>"$d/err"
	expect_rc 2 "$RECV" --port-file "$d/p" -i "$d/x" "$d/out" 2>"$d/err"
	expect_rc 2 "$INSPECT" --key-file 2>"$d/err"
	# a budget too small for the chunk size is the library's usage error
	expect_rc 2 "$SEND" -q --chunk-size 16M --memory 1M -o "$d/s.vms" "$data/text" 2>"$d/err"
	one_error_line "$d/err" VMS_EINVAL
	[ ! -e "$d/s.vms" ] && [ ! -e "$d/out" ]
	no_leftovers "$d"
}
run "bad --compress/--encrypt/--threads/--memory and combinations: exit 2" t_usage

echo "e2e_stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
