#!/usr/bin/env bash
# End-to-end tests of vmstream-send / vmstream-recv / vmstream-inspect on
# files and pipes: bit-exact round trips at chunk boundaries, pipe mode,
# sparse output, output protection (--force), usage errors, --json, inspect,
# peer abort, a hand-built stream with ZERO records and multi-device streams,
# and signal cleanup. VMS_E2E_LARGE=1 adds a 3 GiB round trip.
#
# Tools: $VMS_SEND, $VMS_RECV, $VMS_INSPECT (set by CTest), else build/bin/.
# Harness: tests/lib_e2e.sh (each test in a watched subshell, TEST_TIMEOUT
# VMS_E2E_FILE_TEST_TIMEOUT, default 300 s).
# Last line: "e2e_file: N passed, N failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SUITE=e2e_file
PASS="file"
TEST_TIMEOUT=${VMS_E2E_FILE_TEST_TIMEOUT:-300}
# shellcheck source=tests/lib_e2e.sh
. "$root/tests/lib_e2e.sh"
SEND=$(find_tool VMS_SEND vmstream-send)
RECV=$(find_tool VMS_RECV vmstream-recv)
INSPECT=$(find_tool VMS_INSPECT vmstream-inspect)
need python3

# expect_rc WANT CMD...: CMD must exit with exactly WANT.
expect_rc() {
	local want=$1 rc=0
	shift
	"$@" || rc=$?
	[ "$rc" -eq "$want" ] || fail "expected exit $want, got $rc: $*"
}
# one_error_line FILE CODE: FILE holds exactly one line naming VMS_<CODE>.
one_error_line() {
	local n
	n=$(wc -l <"$1")
	[ "$n" -eq 1 ] || fail "expected one stderr line, got $n: $(cat "$1")"
	grep -Eq "^vmstream-[a-z]+: error: $2: .+" "$1" || fail "expected $2 in: $(cat "$1")"
}
gen() { head -c "$2" /dev/urandom >"$1"; }
# records_of STREAM [--verify]: number of records inspect lists.
records_of() {
	"$INSPECT" --json "$@" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["records"]))'
}

# ---- round trips --------------------------------------------------------

roundtrip() { # roundtrip SIZE CHUNK_BYTES [--chunk-size ARG]
	local size=$1 chunk=$2 d="$tmp/rt" want
	shift 2
	rm -rf "$d" && mkdir "$d"
	gen "$d/in" "$size"
	"$SEND" -q "$@" -o "$d/s.vms" "$d/in"
	"$RECV" -q -i "$d/s.vms" "$d/out"
	cmp "$d/in" "$d/out"
	# DEVICE_BEGIN + one DATA per started chunk + DEVICE_END + EOS
	want=$(((size + chunk - 1) / chunk + 3))
	[ "$(records_of "$d/s.vms")" -eq "$want" ] || fail "expected $want records"
	[ "$(records_of "$d/s.vms" --verify)" -eq "$want" ] || fail "expected $want verified records"
	"$INSPECT" --verify "$d/s.vms" >"$d/listing"
	grep -q '^verdict: *OK' "$d/listing"
	no_leftovers "$d"
}

for c in 1048576 4096; do
	for size in 0 1 $((c - 1)) "$c" $((c + 1)) $((3 * c + 17)); do
		if [ "$c" -eq 1048576 ]; then
			run "roundtrip size=$size chunk=default" roundtrip "$size" "$c"
		else
			run "roundtrip size=$size chunk=4K" roundtrip "$size" "$c" --chunk-size 4K
		fi
	done
done

t_chunk_suffixes() {
	local d="$tmp/suf" s
	rm -rf "$d" && mkdir "$d"
	gen "$d/in" 300000
	for s in 4096 4K 4KiB 64K 1M 1MiB 16M 16MiB; do
		"$SEND" -q --chunk-size "$s" -o "$d/$s.vms" "$d/in"
		"$RECV" -q -i "$d/$s.vms" "$d/$s.out"
		cmp "$d/in" "$d/$s.out"
	done
	"$INSPECT" --json "$d/64K.vms" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["preamble"]["chunk_cap"] == 65536, j["preamble"]
assert [r["raw_len"] for r in j["records"] if r["type"] == "DATA"] == [65536] * 4 + [37856]'
}
run "chunk-size suffixes" t_chunk_suffixes

# ---- pipes --------------------------------------------------------------

t_pipe() {
	local d="$tmp/pipe"
	rm -rf "$d" && mkdir "$d"
	gen "$d/in" 5000000
	# stdin (no INPUT operand) -> stdout -> stdin -> stdout (no OUTPUT operand)
	"$SEND" -q --chunk-size 64K -o - <"$d/in" | "$RECV" -q -i - >"$d/out"
	cmp "$d/in" "$d/out"
	cat "$d/in" | "$SEND" -q -o - - | "$RECV" -q --input - - | cat >"$d/out2"
	cmp "$d/in" "$d/out2"
	# A stream read from a pipe, written to a file.
	"$SEND" -q -o - "$d/in" | "$RECV" -q -i - "$d/out3"
	cmp "$d/in" "$d/out3"
	# The stream from stdin names its device "stdin".
	"$SEND" -q -o "$d/s.vms" <"$d/in"
	"$INSPECT" --verify "$d/s.vms" | grep -q 'name "stdin"'
	# A FIFO output is written in place.
	mkfifo "$d/fifo"
	"$RECV" -q -i "$d/s.vms" "$d/fifo" &
	cmp "$d/in" "$d/fifo"
	wait $!
}
run "pipe mode (stdin/stdout, FIFO)" t_pipe

# ---- zeros and sparse output --------------------------------------------

t_sparse() {
	local d="$tmp/sparse" blocks
	rm -rf "$d" && mkdir "$d"
	# 64 MiB, mostly holes, with data at the start, inside and at the end.
	truncate -s 64M "$d/in"
	head -c 10000 /dev/urandom | dd of="$d/in" conv=notrunc status=none
	head -c 4096 /dev/urandom | dd of="$d/in" bs=4096 seek=5000 conv=notrunc status=none
	printf 'tail' | dd of="$d/in" bs=1 seek=$((64 * 1048576 - 4)) conv=notrunc status=none
	"$SEND" -q -o "$d/s.vms" "$d/in"
	"$RECV" -q -i "$d/s.vms" "$d/out"
	cmp "$d/in" "$d/out"
	# All-zero input, ending in a hole: the size must still be exact.
	head -c $((3 * 1048576 + 1)) /dev/zero >"$d/zin"
	"$SEND" -q -o "$d/z.vms" "$d/zin"
	"$RECV" -q -i "$d/z.vms" "$d/zout"
	cmp "$d/zin" "$d/zout"
	[ "$(stat -c %s "$d/zout")" -eq $((3 * 1048576 + 1)) ]
	# Pipe output gets every zero byte.
	"$RECV" -q -i "$d/s.vms" - | cmp "$d/in" -
	# The file output is sparse where the filesystem can make holes.
	truncate -s 8M "$d/probe"
	if [ "$(stat -c %b "$d/probe")" -eq 0 ]; then
		blocks=$(stat -c %b "$d/out")
		[ "$((blocks * 512))" -lt $((4 * 1048576)) ] ||
			fail "output not sparse: $blocks blocks for 64 MiB"
		blocks=$(stat -c %b "$d/zout")
		[ "$((blocks * 512))" -lt 1048576 ] || fail "all-zero output not sparse: $blocks blocks"
	fi
}
run "sparse and zero files" t_sparse

# A stream the tools cannot produce yet (ZERO records, several devices, no
# device), built by hand from FORMAT.md with xxhsum for the checksums.
mkstream() { # mkstream OUT SPEC EXPECTED_OUT  (SPEC: zero | twodev | nodev)
	python3 - "$@" <<'EOF'
import os, struct, subprocess, sys

def xxh3(b):
    out = subprocess.run(["xxhsum", "-H3", "-"], input=b, capture_output=True, check=True)
    return int(out.stdout.split()[-1], 16)

out, spec, expected = sys.argv[1], sys.argv[2], sys.argv[3]
pre = bytearray(b"\x8aVMS\r\n\x1a\n" + struct.pack("<HHI", 1, 0, 56) + os.urandom(16)
                + struct.pack("<IIBBHI", 0, 1 << 20, 0, 0, 1, 0))
pre += struct.pack("<Q", xxh3(bytes(pre)))
recs, seq, raw_total = [], 0, 0

def rec(rtype, device, offset, raw_len, body, payload_sum):
    global seq
    h = struct.pack("<BBBBIQQIIHHIQ", rtype, 0, 0, 0, device, seq, offset, raw_len,
                    len(body), 0, 0, 0, payload_sum)
    recs.append(h + struct.pack("<Q", xxh3(h)) + body)
    seq += 1

def ctrl(rtype, device, body):
    rec(rtype, device, 0, len(body), body, xxh3(body))

def device(index, name, parts):
    global raw_total
    ctrl(1, index, struct.pack("<IIQH", 0, 0, 2**64 - 1, len(name)) + name)
    data, off = b"", 0
    for kind, n in parts:
        if kind == "data":
            chunk = os.urandom(n)
            rec(2, index, off, n, chunk, xxh3(chunk))
            data += chunk
        else:
            rec(3, index, off, n, b"", 0)
            data += bytes(n)
        off += n
    raw_total += off
    ctrl(5, index, struct.pack("<QQ", off, xxh3(data)))
    return data

if spec == "zero":
    data = device(0, b"zeros", [("data", 4096), ("zero", 1 << 20), ("data", 100),
                                ("zero", 8192), ("data", 5000), ("zero", 1 << 20),
                                ("zero", 12345)])
    ndev = 1
elif spec == "twodev":
    data = device(0, b"first", [("data", 1000)]) + device(1, b"second", [("data", 1000)])
    ndev = 2
else:
    data, ndev = b"", 0
ctrl(6, 0xFFFFFFFF, struct.pack("<QQII", seq, raw_total, ndev, 0))
with open(out, "wb") as f:
    f.write(pre + b"".join(recs))
with open(expected, "wb") as f:
    f.write(data)
EOF
}

t_zero_records() {
	local d="$tmp/zrec"
	rm -rf "$d" && mkdir "$d"
	mkstream "$d/z.vms" zero "$d/want"
	"$INSPECT" --verify "$d/z.vms" >"$d/listing"
	[ "$(grep -c ' ZERO ' "$d/listing")" -eq 4 ]
	"$RECV" -q -i "$d/z.vms" "$d/out"
	cmp "$d/want" "$d/out"
	"$RECV" -q -i "$d/z.vms" | cmp "$d/want" -
	"$RECV" -q -i - <"$d/z.vms" | cmp "$d/want" -
}
run "ZERO records: holes in files, zeros in pipes" t_zero_records

t_devices() {
	local d="$tmp/dev"
	rm -rf "$d" && mkdir "$d"
	mkstream "$d/two.vms" twodev "$d/want"
	expect_rc 0 "$INSPECT" --verify "$d/two.vms" >/dev/null
	expect_rc 4 "$RECV" -i "$d/two.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EDEVICE
	grep -q 'second device' "$d/err"
	[ ! -e "$d/out" ]
	mkstream "$d/none.vms" nodev "$d/want"
	expect_rc 0 "$INSPECT" --verify "$d/none.vms" >/dev/null
	expect_rc 4 "$RECV" -i "$d/none.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EDEVICE
	[ ! -e "$d/out" ]
	no_leftovers "$d"
}
run "recv takes exactly one device" t_devices

# ---- output protection --------------------------------------------------

t_force() {
	local d="$tmp/force"
	rm -rf "$d" && mkdir "$d"
	gen "$d/in" 100000
	"$SEND" -q -o "$d/s.vms" "$d/in"
	echo original >"$d/out"
	cp "$d/out" "$d/orig"
	# recv refuses before reading: even a bad stream gives VMS_EEXIST.
	expect_rc 3 "$RECV" -i "$d/s.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EEXIST
	expect_rc 3 "$RECV" -i /nonexistent "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EEXIST
	cmp "$d/orig" "$d/out"
	"$RECV" -q --force -i "$d/s.vms" "$d/out"
	cmp "$d/in" "$d/out"
	# send refuses to replace a stream file, and replaces it with --force.
	cp "$d/s.vms" "$d/s.orig"
	expect_rc 3 "$SEND" -o "$d/s.vms" "$d/in" 2>"$d/err"
	one_error_line "$d/err" VMS_EEXIST
	cmp "$d/s.orig" "$d/s.vms"
	"$SEND" -q --force -o "$d/s.vms" "$d/in"
	! cmp -s "$d/s.orig" "$d/s.vms" # a new stream id
	"$INSPECT" --verify "$d/s.vms" >/dev/null
	# A dangling symlink counts as existing too.
	ln -s "$d/nowhere" "$d/link"
	expect_rc 3 "$RECV" -i "$d/s.vms" "$d/link" 2>"$d/err"
	one_error_line "$d/err" VMS_EEXIST
	# Devices are written in place, no --force needed.
	"$SEND" -q -o /dev/null "$d/in"
	"$RECV" -q -i "$d/s.vms" /dev/null
	no_leftovers "$d"
}
run "existing output: refused (exit 3) unless --force" t_force

t_io_errors() {
	local d="$tmp/ioerr"
	rm -rf "$d" && mkdir "$d"
	gen "$d/in" 1000
	expect_rc 3 "$SEND" -o "$d/s.vms" "$d/missing" 2>"$d/err"
	one_error_line "$d/err" VMS_EIO
	expect_rc 3 "$SEND" -o "$d/s.vms" "$d" 2>"$d/err"
	one_error_line "$d/err" VMS_EIO
	expect_rc 3 "$SEND" -o "$d/nodir/s.vms" "$d/in" 2>"$d/err"
	one_error_line "$d/err" VMS_EIO
	expect_rc 3 "$SEND" -o "$d" "$d/in" 2>"$d/err"
	one_error_line "$d/err" VMS_EIO
	[ ! -e "$d/s.vms" ]
	"$SEND" -q -o "$d/s.vms" "$d/in"
	expect_rc 3 "$RECV" -i "$d/missing" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EIO
	expect_rc 3 "$INSPECT" "$d/missing" >/dev/null 2>"$d/err"
	one_error_line "$d/err" VMS_EIO
	# A full disk: the output sink fails and nothing is left behind.
	if [ -w /dev/full ]; then
		expect_rc 3 "$RECV" -i "$d/s.vms" /dev/full 2>"$d/err"
		one_error_line "$d/err" VMS_ESINK
		expect_rc 3 "$SEND" -o /dev/full "$d/in" 2>"$d/err"
		one_error_line "$d/err" VMS_EIO
	fi
	# A regular output that cannot grow (file size limit), from a plain
	# stream of a regular file (the mapped input path): the write error is
	# named, and no output or temporary file is left. (posix: EFBIG; io_uring
	# on Linux 6.18 reports such writes as complete, and the writer's size
	# check after the last write catches it.)
	head -c 3000000 /dev/urandom >"$d/in3m"
	expect_rc 3 bash -c 'ulimit -f 1000; trap "" XFSZ; exec "$0" -o "$1" "$2"' \
		"$SEND" "$d/big.vms" "$d/in3m" 2>"$d/err"
	one_error_line "$d/err" VMS_EIO
	grep -Eq 'write failed \(output\): File too large|output file is 1024000 bytes after 3000484 bytes were written from offset 0: data was lost' \
		"$d/err" || fail "$(cat "$d/err")"
	[ ! -e "$d/big.vms" ]
	rm -f "$d/in3m"
	# Not a stream at all.
	expect_rc 4 "$RECV" -i "$d/in" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_EMAGIC
	[ ! -e "$d/out" ]
	no_leftovers "$d"
}
run "I/O errors: exit 3, bad stream: exit 4" t_io_errors

t_abort() {
	local d="$tmp/abort" rcs
	rm -rf "$d" && mkdir "$d"
	# Reading /proc/self/mem from offset 0 fails with EIO after the stream
	# has started: the sender writes ABORT, the receiver reports it.
	set +e
	"$SEND" -q -o - /proc/self/mem 2>"$d/send.err" | "$RECV" -q -i - "$d/out" 2>"$d/recv.err"
	rcs="${PIPESTATUS[*]}"
	set -e
	[ "$rcs" = "3 6" ] || fail "exit statuses $rcs, expected 3 6"
	one_error_line "$d/send.err" VMS_EIO
	one_error_line "$d/recv.err" VMS_EPEERABORT
	grep -q "/proc/self/mem" "$d/recv.err" # the peer's reason
	[ ! -e "$d/out" ]
	# A file output of an aborted send is removed.
	expect_rc 3 "$SEND" -o "$d/s.vms" /proc/self/mem 2>"$d/err"
	[ ! -e "$d/s.vms" ]
	no_leftovers "$d"
	# inspect shows the ABORT record and exits 6.
	"$SEND" -q -o - /proc/self/mem 2>/dev/null >"$d/aborted.vms" || true
	expect_rc 6 "$INSPECT" --verify "$d/aborted.vms" >"$d/listing" 2>/dev/null
	grep -q 'ABORT .*code VMS_EIO' "$d/listing"
	grep -q '^verdict: *ABORTED' "$d/listing"
}
# The abort test needs an input that opens but fails on read().
if python3 -c '
import errno, sys
try:
    with open("/proc/self/mem", "rb") as f:
        f.read(1)
except OSError as e:
    sys.exit(0 if e.errno == errno.EIO else 1)
sys.exit(1)' 2>/dev/null; then
	run "peer abort: send exit 3, recv exit 6, no output" t_abort
else
	echo "SKIP peer abort (reading /proc/self/mem does not fail with EIO here)"
fi

t_truncated() {
	local d="$tmp/trunc" size
	rm -rf "$d" && mkdir "$d"
	gen "$d/in" 300000
	"$SEND" -q --chunk-size 64K -o "$d/s.vms" "$d/in"
	size=$(stat -c %s "$d/s.vms")
	head -c $((size - 1)) "$d/s.vms" >"$d/cut.vms"
	expect_rc 4 "$RECV" -i "$d/cut.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_ETRUNCATED
	[ ! -e "$d/out" ]
	expect_rc 4 "$INSPECT" "$d/cut.vms" >/dev/null 2>&1
	expect_rc 4 "$INSPECT" --verify "$d/cut.vms" >/dev/null 2>&1
	# The pipe case: a stream cut short fails the same way.
	expect_rc 4 "$RECV" -i - "$d/out" <"$d/cut.vms" 2>"$d/err"
	[ ! -e "$d/out" ]
	cat "$d/s.vms" - <<<"x" >"$d/trail.vms"
	expect_rc 4 "$RECV" -i "$d/trail.vms" "$d/out" 2>"$d/err"
	one_error_line "$d/err" VMS_ETRAILING
	[ ! -e "$d/out" ]
	no_leftovers "$d"
}
run "truncated or trailing stream: exit 4, no output" t_truncated

t_signal() {
	local d="$tmp/sig" pid rc=0
	rm -rf "$d" && mkdir "$d"
	gen "$d/in" 2000000
	"$SEND" -q --chunk-size 64K -o "$d/s.vms" "$d/in"
	for sig in TERM INT HUP; do
		mkfifo "$d/fifo"
		# Asynchronous commands of a script start with SIGINT ignored (and
		# the tools keep an ignored signal ignored): reset it for the test.
		python3 -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$RECV" -q -i "$d/fifo" "$d/out" 2>"$d/err" &
		pid=$!
		exec 3>"$d/fifo"
		head -c 500000 "$d/s.vms" >&3
		# The signal comes once the temporary file exists and has data.
		wait_tmp_data "$d"
		kill -"$sig" "$pid"
		rc=0
		wait "$pid" || rc=$?
		exec 3>&-
		rm -f "$d/fifo"
		[ "$rc" -ne 0 ] || fail "recv exited 0 after SIG$sig"
		one_error_line "$d/err" VMS_ECANCELED
		[ ! -e "$d/out" ]
		no_leftovers "$d"
	done
}
run "SIGTERM/SIGINT/SIGHUP remove the temporary file" t_signal

# ---- usage --------------------------------------------------------------

t_usage() {
	local d="$tmp/usage" bad
	rm -rf "$d" && mkdir "$d"
	gen "$d/in" 100
	for bad in 4X 3K 3KiB 17M 1G 0 '' -4K +4K 4.5K 0x1000 ' 4K' '4K ' 4k 4KB 4Ki \
		99999999999999999999999 18446744073709551616 17179869184G; do
		expect_rc 2 "$SEND" --chunk-size "$bad" -o "$d/s.vms" "$d/in" 2>"$d/err"
		one_error_line "$d/err" VMS_EINVAL
		grep -q -- '--chunk-size' "$d/err"
	done
	expect_rc 2 "$SEND" --bogus -o "$d/s.vms" "$d/in" 2>"$d/err"
	one_error_line "$d/err" VMS_EINVAL
	grep -q "unknown or ambiguous option '--bogus'" "$d/err"
	expect_rc 2 "$SEND" "$d/in" 2>"$d/err"              # no --output
	grep -q -- '--output FILE is required' "$d/err"
	expect_rc 2 "$SEND" -o 2>"$d/err"                   # missing argument
	grep -q "option '-o' needs an argument" "$d/err"
	expect_rc 2 "$SEND" --output 2>"$d/err"
	grep -q "option '--output' needs an argument" "$d/err"
	expect_rc 2 "$SEND" --quiet=yes -o "$d/s.vms" "$d/in" 2>"$d/err"
	grep -q "option '--quiet' takes no argument" "$d/err"
	expect_rc 2 "$SEND" -o "$d/s.vms" "$d/in" "$d/in" 2>"$d/err"
	grep -q 'more than one INPUT' "$d/err"
	expect_rc 2 "$SEND" --json= -o "$d/s.vms" "$d/in" 2>"$d/err"
	expect_rc 2 "$RECV" "$d/out" 2>"$d/err"             # no --input
	grep -q -- '--input FILE is required' "$d/err"
	expect_rc 2 "$RECV" -i "$d/in" a b 2>"$d/err"
	expect_rc 2 "$RECV" -x 2>"$d/err"
	grep -q "unknown option '-x'" "$d/err"
	expect_rc 2 "$INSPECT" 2>"$d/err"
	grep -q 'FILE is required' "$d/err"
	expect_rc 2 "$INSPECT" a b 2>"$d/err"
	expect_rc 2 "$INSPECT" --force x 2>"$d/err"         # not an inspect option
	[ ! -e "$d/s.vms" ]
	[ ! -e "$d/out" ]
	no_leftovers "$d"
}
run "bad options: exit 2 with one message line" t_usage

t_help_version() {
	local tool
	for tool in "$SEND" "$RECV" "$INSPECT"; do
		"$tool" --help >"$tmp/help"
		grep -q '^Usage: vmstream-' "$tmp/help"
		grep -q '^Exit status:' "$tmp/help"
		grep -q '^  4  invalid, corrupt or truncated stream' "$tmp/help"
		"$tool" -h | cmp - "$tmp/help"
		"$tool" --version | grep -Eq '^vmstream-[a-z]+ [0-9]+\.[0-9]+\.[0-9]+ \(libvmstream '
		"$tool" -V >/dev/null
	done
}
run "--help and --version exit 0" t_help_version

# ---- JSON ---------------------------------------------------------------

t_json() {
	local d="$tmp/json"
	rm -rf "$d" && mkdir "$d"
	gen "$d/in" 1234567
	"$SEND" -q --chunk-size 256K --json="$d/send.json" -o "$d/s.vms" "$d/in"
	python3 - "$d/send.json" "$(stat -c %s "$d/s.vms")" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 1, lines
j = json.loads(lines[0])
assert j["tool"] == "vmstream-send" and j["status"] == "ok" and j["exit_code"] == 0, j
assert j["bytes_in"] == 1234567, j
assert j["bytes_on_wire"] == int(sys.argv[2]), j
assert j["records"] == 5 + 3, j
assert j["device"] == "in" and j["error_code"] is None, j
assert j["seconds"] >= 0 and j["rate_bytes_per_sec"] >= 0, j
EOF
	# --json without FILE goes to stderr, alone on its line.
	"$RECV" -q --json -i "$d/s.vms" "$d/out" 2>"$d/recv.json"
	cmp "$d/in" "$d/out"
	"$INSPECT" --verify --json "$d/s.vms" >"$d/inspect.json"
	python3 - "$d/recv.json" "$d/inspect.json" <<'EOF'
import json, sys
j = json.loads(open(sys.argv[1]).read())
assert j["tool"] == "vmstream-recv" and j["status"] == "ok", j
assert j["bytes_out"] == 1234567, j
i = json.load(open(sys.argv[2]))
end = [r for r in i["records"] if r["type"] == "DEVICE_END"][0]
assert j["digest_xxh3"] == end["digest_xxh3"] and end["total"] == 1234567, (j, end)
assert i["verdict"]["status"] == "ok" and i["verdict"]["raw_bytes"] == 1234567, i["verdict"]
assert i["preamble"]["size_hint"] == 1234567 and i["preamble"]["lanes"] == 1, i["preamble"]
EOF
	# Failures are reported in JSON too.
	echo x >"$d/exists"
	expect_rc 3 "$RECV" --json="$d/fail.json" -i "$d/s.vms" "$d/exists" 2>/dev/null
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["status"] == "error" and j["exit_code"] == 3 and j["error_code"] == "VMS_EEXIST", j
assert j["error_message"], j' "$d/fail.json"
	head -c 1000 "$d/s.vms" >"$d/cut.vms"
	expect_rc 4 "$INSPECT" --json "$d/cut.vms" >"$d/cut.json" 2>/dev/null
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
v = j["verdict"]
assert v["status"] == "invalid" and v["exit_code"] == 4 and v["error_code"] == "VMS_ETRUNCATED", v
assert len(j["records"]) == 1, j["records"]' "$d/cut.json"
	expect_rc 4 "$INSPECT" --json "$d/in" >"$d/bad.json" 2>/dev/null
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["preamble"] is None and j["verdict"]["error_code"] == "VMS_EMAGIC", j' "$d/bad.json"
}
run "--json summaries parse and are exact" t_json

# ---- large file (opt-in) ------------------------------------------------

t_large() {
	local d="$tmp/large" size=$((3 * 1024 * 1024 * 1024)) i
	rm -rf "$d" && mkdir "$d"
	# 3 GiB: holes with 64 MiB random stretches every 512 MiB, crossing 2^31
	# and 2^32 offsets.
	truncate -s "$size" "$d/in"
	for i in 0 1 2 3 4 5; do
		head -c $((64 * 1048576)) /dev/urandom |
			dd of="$d/in" bs=1M seek=$((i * 512 + 100)) conv=notrunc status=none
	done
	head -c 4096 /dev/urandom | dd of="$d/in" bs=4096 seek=$((size / 4096 - 1)) \
		conv=notrunc status=none
	"$SEND" -q -o "$d/s.vms" "$d/in"
	"$INSPECT" --verify "$d/s.vms" | grep -q '^verdict: *OK'
	"$RECV" -q -i "$d/s.vms" "$d/out"
	rm -f "$d/s.vms"
	cmp "$d/in" "$d/out"
	"$SEND" -q -o - "$d/in" | "$RECV" -q -i - | cmp "$d/in" -
}
if [ "${VMS_E2E_LARGE:-0}" = 1 ]; then
	run "large file (3 GiB)" t_large
else
	skip "large file (set VMS_E2E_LARGE=1)"
fi

echo "e2e_file: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
