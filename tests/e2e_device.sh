#!/usr/bin/env bash
# End-to-end tests of device mode: vmstream-send --device / vmstream-recv
# --device migrating simulated devices (VFIO data_fd semantics) with
# vms_migrate_send / vms_migrate_recv, in network mode (TLS 1.3 PSK on
# loopback) and file mode (a migration snapshot). The network and file tests
# run twice, with VMS_IO=posix and VMS_IO=uring (the uring pass is skipped,
# with a SKIP line, only when io_uring is unavailable here).
#
# The device set is a VMM's: gpu0 (64 MiB, mixed, 8 MiB dirtied per precopy
# round), qat0..qat3 (4 KiB), hisi0 (176 bytes).
#
#  - migrations: both ends exit 0, every device's bytes (precopy, stop-copy)
#    equal in the two --json summaries, at least one precopy round, every
#    destination device STOP (loaded and validated); matching by name (the
#    destination lists its devices in another order) and by position
#    (default names dev0..); --precopy-rounds/--downtime-limit; --no-precopy;
#  - faults: fault=read on a source device (sender exit 8 naming it, receiver
#    exit 6, no destination device left RESUMING); fault=resume on a
#    destination device (receiver exit 8 naming it, sender exit 6 with the
#    receiver's reason, source devices RUNNING again); a device the
#    destination lacks (receiver exit 4 VMS_EDEVICE, sender exit 6); a
#    destination opened with another seed (rejected at RESUMING -> STOP,
#    exit 8);
#  - usage: --device with INPUT/OUTPUT, bad sim specs (the library's message),
#    duplicate names, device-mode options without --device: exit 2;
#    vfio:/nonexistent and vfio:/dev/null: exit 8 (device error).
#
# Tools: $VMS_SEND, $VMS_RECV, $VMS_INSPECT (set by CTest), else build/bin/.
# VMS_E2E_DEVICE_PASSES="posix uring" (default) selects the passes.
# Last line: "e2e_device: N passed, N failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SUITE=e2e_device
TEST_TIMEOUT=${VMS_E2E_DEVICE_TEST_TIMEOUT:-90}
# A test exits with XFAIL_RC when it hit a known library issue (named in its
# output); VMS_E2E_DEVICE_STRICT=1 counts those as failures.
XFAIL_RC=99
XFAIL_STRICT=${VMS_E2E_DEVICE_STRICT:-}
# shellcheck source=tests/lib_e2e.sh
. "$root/tests/lib_e2e.sh"
SEND=$(find_tool VMS_SEND vmstream-send)
RECV=$(find_tool VMS_RECV vmstream-recv)
INSPECT=$(find_tool VMS_INSPECT vmstream-inspect optional)
need python3 openssl

# ---- devices ------------------------------------------------------------------

ALL="gpu0 qat0 qat1 qat2 qat3 hisi0"
spec_of() { # spec_of NAME: the sim spec of a device of the set (seed last)
	case $1 in
	gpu0) echo "size=${GPU:-64M},profile=mixed,dirty=${GPU_DIRTY:-8M},seed=1" ;;
	qat[0-3]) echo "size=4K,profile=text,dirty=4K,seed=$((${1#qat} + 2))" ;;
	hisi0) echo "size=176,profile=random,seed=9" ;;
	*) fail "no device $1" ;;
	esac
}
# devices "NAMES" [NAME EXTRA]...: the --device options of NAMES in DEVS;
# EXTRA is appended to NAME's spec ("seed=N" replaces its seed). With
# NONAME=1 the specs carry no name= (default names dev0, dev1, ...).
devices() {
	local names=$1 n k spec extra
	shift
	local -a mods=("$@")
	DEVS=()
	for n in $names; do
		spec=$(spec_of "$n")
		for ((k = 0; k < ${#mods[@]}; k += 2)); do
			[ "${mods[k]}" = "$n" ] || continue
			extra=${mods[k + 1]}
			case $extra in
			seed=*) spec="${spec%seed=*}$extra" ;;
			*) spec="$spec,$extra" ;;
			esac
		done
		if [ -n "${NONAME:-}" ]; then
			DEVS+=(--device "sim:$spec")
		else
			DEVS+=(--device "sim:$spec,name=$n")
		fi
	done
}

# start_recv DIR ARGS...: vmstream-recv --listen --psk-file in the background
# (stderr to DIR/recv.err, JSON to DIR/recv.json, exit status to DIR/recv.rc);
# sets RPID and RPORT.
start_recv() {
	local d=$1
	shift
	rm -f "$d/port" "$d/recv.rc"
	(
		rc=0
		"$RECV" --listen 127.0.0.1:0 --port-file "$d/port" --psk-file "$M/psk" \
			--idle-timeout 20 --json="$d/recv.json" "$@" 2>"$d/recv.err" || rc=$?
		echo "$rc" >"$d/recv.rc.tmp" && mv "$d/recv.rc.tmp" "$d/recv.rc"
	) &
	RPID=$!
	BG+=("$RPID")
	RPORT=$(wait_port "$d/port")
}

# send DIR ARGS...: vmstream-send --to (PSK) in the foreground; exit status in
# SRC, stderr in DIR/send.err, JSON in DIR/send.json.
send() {
	local d=$1
	shift
	SRC=0
	"$SEND" --to "127.0.0.1:$RPORT" --psk-file "$M/psk" --idle-timeout 20 \
		--json="$d/send.json" "$@" 2>"$d/send.err" || SRC=$?
}

# expect RC_SEND RC_RECV: check both exit statuses (receiver waited for).
expect() {
	local rrc
	rrc=$(wait_rc "$D/recv.rc" "$RPID" 60)
	if [ "$SRC" -ne "$1" ] || [ "$rrc" -ne "$2" ]; then
		echo "--- send.err"; cat "$D/send.err" 2>/dev/null || true
		echo "--- recv.err"; cat "$D/recv.err" 2>/dev/null || true
		fail "expected exit send=$1 recv=$2, got send=$SRC recv=$rrc"
	fi
}

# check_ok MODE [MIN_ROUNDS [MAX_ROUNDS]]: both summaries say ok, every
# device's bytes agree between them, destination devices are STOP. The
# names agree too, unless SAME_NAMES=0 (matched by position).
check_ok() {
	python3 - "$D/send.json" "$D/recv.json" "$1" "$ENGINE" "${2:-1}" "${3:-1000}" \
		"${SAME_NAMES:-1}" <<'EOF'
import json, sys
s, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
mode, engine, lo, hi = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
same_names = sys.argv[7] == "1"
assert s["status"] == "ok" and r["status"] == "ok", (s, r)
assert s["mode"] == mode and r["mode"] == mode, (s["mode"], r["mode"])
if mode == "net":
    assert s["acknowledged"] is True, s
    assert s["engine"] == engine and r["engine"] == engine, (s["engine"], r["engine"])
assert lo <= s["rounds"] <= hi, ("rounds", s["rounds"], lo, hi)
assert s["downtime_ms"] > 0 and s["est_downtime_ms"] > 0, s
sd, rd = s["devices"], r["devices"]
assert len(sd) == len(rd) > 0, (len(sd), len(rd))
assert r["not_loaded"] == [], r["not_loaded"]
for i, (a, b) in enumerate(zip(sd, rd)):
    assert b["index"] == i, b
    assert b["name"] is not None, b
    assert a["name"] == b["name"] or not same_names, (i, a["name"], b["name"])
    for k in ("precopy_bytes", "stopcopy_bytes", "bytes"):
        assert a[k] == b[k], (a["name"], k, a[k], b[k])
    assert a["stopcopy_bytes"] > 0, a
    assert a["result"] == "ok" and b["result"] == "ok", (a, b)
    assert a["state"] == "STOP" and b["state"] == "STOP", (a, b)
    assert a["downtime_ms"] is not None and a["downtime_ms"] <= s["downtime_ms"], a
    assert a["digest_xxh3"] is not None, a
assert s["bytes_in"] == r["bytes_out"] == sum(d["bytes"] for d in sd), (s["bytes_in"], r["bytes_out"])
if lo > 0:
    assert sd[0]["precopy_bytes"] >= 64 << 20, sd[0]  # gpu0's initial bytes went in precopy
EOF
}

# jq_py FILE EXPR: evaluate a Python expression over the JSON summary j.
jq_py() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print("null" if v is None else v)' "$1" "$2"; }

# no_device_left STATE_NOT FILE: no device of a summary is in that state.
no_device_in() {
	python3 - "$2" "$1" <<'EOF'
import json, sys
j, bad = json.load(open(sys.argv[1])), sys.argv[2]
for d in j["devices"]:
    assert d["state"] != bad, ("device left in", bad, d)
EOF
}

# ---- material -----------------------------------------------------------------

M="$tmp/material"
mkdir "$M"
psk "$M/psk"

# ---- network mode -----------------------------------------------------------------

t_net_ok() {
	newdir net-ok
	# the destination lists its devices in another order: matched by name
	devices "hisi0 qat3 gpu0 qat1 qat0 qat2"
	start_recv "$D" "${DEVS[@]}"
	devices "$ALL"
	send "$D" "${DEVS[@]}" --verbose
	expect 0 0
	check_ok net
	grep -q 'precopy round 1: ' "$D/send.err" || fail "no precopy round line"
	grep -q 'switchover' "$D/send.err" || fail "no switchover line"
	[ "$(jq_py "$D/send.json" 'j["devices"][0]["name"]')" = gpu0 ]
	[ "$(jq_py "$D/recv.json" 'j["peer"]')" = "psk:vmstream" ]
}

t_net_lanes() {
	newdir net-lanes
	NONAME=1 devices "$ALL"
	start_recv "$D" "${DEVS[@]}"
	send "$D" "${DEVS[@]}" --lanes 2 --compress zstd --precopy-rounds 3 --downtime-limit 1
	expect 0 0
	# the estimate never fits 1 ms: exactly the 3 rounds allowed
	check_ok net 3 3
	[ "$(jq_py "$D/recv.json" 'j["lanes"]')" = 2 ]
	[ "$(jq_py "$D/recv.json" 'j["compress"]')" = zstd ]
	[ "$(jq_py "$D/recv.json" '",".join(d["name"] for d in j["devices"])')" = \
		"dev0,dev1,dev2,dev3,dev4,dev5" ]
}

t_net_no_precopy() {
	newdir net-noprecopy
	devices "$ALL"
	start_recv "$D" "${DEVS[@]}"
	send "$D" "${DEVS[@]}" --no-precopy
	expect 0 0
	check_ok net 0 0
	[ "$(jq_py "$D/send.json" 'sum(d["precopy_bytes"] for d in j["devices"])')" = 0 ]
}

t_net_source_read_fault() {
	newdir net-readfault
	devices "$ALL"
	start_recv "$D" "${DEVS[@]}"
	devices "$ALL" gpu0 fault=read,fault_at=3
	send "$D" "${DEVS[@]}"
	expect 8 6
	grep -q 'error: VMS_EDEVIO: .*gpu0.*simulated read fault' "$D/send.err"
	grep -q 'error: VMS_EPEERABORT: .*gpu0' "$D/recv.err"
	[ "$(jq_py "$D/send.json" 'j["error_code"]')" = VMS_EDEVIO ]
	[ "$(jq_py "$D/recv.json" 'j["exit_code"]')" = 6 ]
	no_device_in RESUMING "$D/recv.json"
	# the source runs on
	[ "$(jq_py "$D/send.json" 'set(d["state"] for d in j["devices"])')" = "{'RUNNING'}" ]
}

# The receiver refuses at a DEVICE_END (in stop-copy): these run with a
# 1 MiB gpu0, so that the sender has (nearly) written its whole stream when
# the refusal comes (see expect() for what happens otherwise).
t_net_dest_resume_fault() {
	local GPU=1M GPU_DIRTY=256K
	newdir net-resumefault
	devices "$ALL" hisi0 fault=resume
	start_recv "$D" "${DEVS[@]}"
	devices "$ALL"
	send "$D" "${DEVS[@]}"
	expect 6 8
	grep -q 'error: VMS_EDEVIO: .*hisi0.*fault=resume' "$D/recv.err"
	# the sender reports the receiver's reason
	grep -q 'error: VMS_EPEERABORT: .*hisi0.*VMS_EDEVIO' "$D/send.err"
	[ "$(jq_py "$D/recv.json" '[d["result"] for d in j["devices"] if d["name"] == "hisi0"][0]')" = VMS_EDEVIO ]
	no_device_in RESUMING "$D/recv.json"
	[ "$(jq_py "$D/send.json" 'set(d["state"] for d in j["devices"])')" = "{'RUNNING'}" ]
}

# The receiver refuses at the start (no hisi0) while the sender still has
# 64 MiB to write.
t_net_missing_device() {
	newdir net-missing
	devices "gpu0 qat0 qat1 qat2 qat3"
	start_recv "$D" "${DEVS[@]}"
	devices "$ALL"
	send "$D" "${DEVS[@]}"
	expect 6 4
	grep -q 'error: VMS_EDEVICE: .*"hisi0" matches no destination device' "$D/recv.err"
	grep -q 'error: VMS_EPEERABORT: .*hisi0.*VMS_EDEVICE' "$D/send.err"
	no_device_in RESUMING "$D/recv.json"
	[ "$(jq_py "$D/recv.json" 'j["devices"][-1]["result"]')" = VMS_EDEVICE ]
}

t_net_wrong_seed() {
	local GPU=1M GPU_DIRTY=256K
	newdir net-seed
	devices "$ALL" qat1 seed=42
	start_recv "$D" "${DEVS[@]}"
	devices "$ALL"
	send "$D" "${DEVS[@]}"
	expect 6 8
	# rejected when loading ends, as a driver validates the image
	grep -q 'error: VMS_EDEVIO: .*qat1.*incompatible device.*RESUMING -> STOP' "$D/recv.err"
	grep -q 'error: VMS_EPEERABORT: .*qat1' "$D/send.err"
	no_device_in RESUMING "$D/recv.json"
}

# ---- file mode ------------------------------------------------------------------

# fsend DIR ARGS...: vmstream-send --output DIR/snap.vms; status in SRC.
fsend() {
	local d=$1
	shift
	SRC=0
	"$SEND" -o "$d/snap.vms" --json="$d/send.json" "$@" 2>"$d/send.err" || SRC=$?
}
# frecv DIR ARGS...: vmstream-recv --input DIR/snap.vms; status in RRC.
frecv() {
	local d=$1
	shift
	RRC=0
	"$RECV" -i "$d/snap.vms" --json="$d/recv.json" "$@" 2>"$d/recv.err" || RRC=$?
}

t_file_ok() {
	newdir file-ok
	devices "$ALL"
	fsend "$D" "${DEVS[@]}" --compress zstd
	[ "$SRC" -eq 0 ] || { cat "$D/send.err"; fail "send exit $SRC"; }
	no_leftovers "$D"
	if [ -n "$INSPECT" ]; then
		"$INSPECT" --verify "$D/snap.vms" >"$D/inspect.out"
		grep -q '6 devices' "$D/inspect.out"
	fi
	devices "qat2 hisi0 gpu0 qat0 qat3 qat1"
	frecv "$D" "${DEVS[@]}"
	[ "$RRC" -eq 0 ] || { cat "$D/recv.err"; fail "recv exit $RRC"; }
	check_ok file
	# a snapshot is restored as often as wanted
	frecv "$D" "${DEVS[@]}"
	[ "$RRC" -eq 0 ]
}

t_file_encrypted_no_precopy() {
	newdir file-enc
	(umask 077 && openssl rand -hex 32 >"$D/key")
	devices "$ALL"
	fsend "$D" "${DEVS[@]}" --no-precopy --key-file "$D/key"
	[ "$SRC" -eq 0 ] || { cat "$D/send.err"; fail "send exit $SRC"; }
	# default names dev0..dev5 match none of the stream's: by position
	NONAME=1 devices "$ALL"
	frecv "$D" "${DEVS[@]}" --key-file "$D/key"
	[ "$RRC" -eq 0 ] || { cat "$D/recv.err"; fail "recv exit $RRC"; }
	SAME_NAMES=0 check_ok file 0 0
	[ "$(jq_py "$D/recv.json" '",".join(d["name"] for d in j["devices"])')" = \
		"dev0,dev1,dev2,dev3,dev4,dev5" ]
	[ "$(jq_py "$D/send.json" 'j["cipher"]')" != none ]
	# without the key: exit 5, nothing loaded
	frecv "$D" "${DEVS[@]}"
	[ "$RRC" -eq 5 ] || { cat "$D/recv.err"; fail "recv without key: exit $RRC"; }
}

t_file_source_read_fault() {
	newdir file-readfault
	devices "$ALL" qat2 fault=read
	fsend "$D" "${DEVS[@]}"
	[ "$SRC" -eq 8 ] || { cat "$D/send.err"; fail "send exit $SRC, expected 8"; }
	grep -q 'error: VMS_EDEVIO: .*qat2.*simulated read fault' "$D/send.err"
	# no snapshot, no temporary file
	[ ! -e "$D/snap.vms" ] || fail "a snapshot was left behind"
	no_leftovers "$D"
	[ "$(jq_py "$D/send.json" 'set(d["state"] for d in j["devices"])')" = "{'RUNNING'}" ]
}

t_file_dest_faults() {
	newdir file-destfault
	devices "$ALL"
	fsend "$D" "${DEVS[@]}"
	[ "$SRC" -eq 0 ] || { cat "$D/send.err"; fail "send exit $SRC"; }
	devices "$ALL" gpu0 seed=3
	frecv "$D" "${DEVS[@]}"
	[ "$RRC" -eq 8 ] || { cat "$D/recv.err"; fail "wrong seed: exit $RRC, expected 8"; }
	grep -q 'error: VMS_EDEVIO: .*gpu0.*incompatible device.*RESUMING -> STOP' "$D/recv.err"
	no_device_in RESUMING "$D/recv.json"
	devices "$ALL" qat0 fault=resume
	frecv "$D" "${DEVS[@]}"
	[ "$RRC" -eq 8 ] || { cat "$D/recv.err"; fail "fault=resume: exit $RRC, expected 8"; }
	grep -q 'error: VMS_EDEVIO: .*qat0' "$D/recv.err"
	devices "gpu0 qat0 qat1 qat2 qat3"
	frecv "$D" "${DEVS[@]}"
	[ "$RRC" -eq 4 ] || { cat "$D/recv.err"; fail "missing device: exit $RRC, expected 4"; }
	grep -q 'error: VMS_EDEVICE: .*"hisi0" matches no destination device' "$D/recv.err"
	no_device_in RESUMING "$D/recv.json"
	# names that partly match: "gpu0" matches none, so the devices go by
	# position, where stream device "qat1" would land on dev2 while the
	# last destination device is named qat1: refused, both named
	NONAME=1 devices "$ALL"
	DEVS[11]="sim:$(spec_of hisi0),name=qat1"
	frecv "$D" "${DEVS[@]}"
	[ "$RRC" -eq 4 ] || { cat "$D/recv.err"; fail "partly matching names: exit $RRC, expected 4"; }
	grep -q 'error: VMS_EDEVICE: stream device 2 "qat1" would go by position to destination device 2 "dev2", but destination device 5 is named "qat1"' "$D/recv.err" ||
		{ cat "$D/recv.err"; fail "partly matching names: message"; }
	no_device_in RESUMING "$D/recv.json"
	# a destination device the stream does not carry: loaded the rest, warned
	devices "$ALL"
	frecv "$D" "${DEVS[@]}" --device sim:size=4K,name=extra0
	[ "$RRC" -eq 0 ] || { cat "$D/recv.err"; fail "extra device: exit $RRC"; }
	grep -q 'WARNING: device extra0: the stream has no state for it' "$D/recv.err"
	[ "$(jq_py "$D/recv.json" 'j["not_loaded"]')" = "['extra0']" ]
}

# ---- usage (engine-independent) ---------------------------------------------------

# usage_case EXPECTED_RC PATTERN TOOL ARGS...
usage_case() {
	local want=$1 pat=$2 rc=0
	shift 2
	"$@" 2>"$D/err" >/dev/null || rc=$?
	if [ "$rc" -ne "$want" ] || ! grep -q -- "$pat" "$D/err"; then
		cat "$D/err"
		fail "$* -> exit $rc (want $want, message /$pat/)"
	fi
	[ "$(wc -l <"$D/err")" -eq 1 ] || { cat "$D/err"; fail "$*: more than one line"; }
}

t_usage() {
	newdir usage
	cd "$D"
	usage_case 2 "VMS_EINVAL: --device and INPUT ('in') exclude each other" \
		"$SEND" --device sim:size=1M -o x.vms in
	usage_case 2 "VMS_EINVAL: --device and OUTPUT ('out') exclude each other" \
		"$RECV" --device sim:size=1M -i x.vms out
	# the library's messages for bad sim specs
	usage_case 2 "sim spec: unknown key 'colour'" "$SEND" --device sim:size=1M,colour=red -o x.vms
	usage_case 2 "sim spec: size '12Q' is not a number" "$SEND" --device sim:size=12Q -o x.vms
	usage_case 2 "sim spec: unknown fault 'write'" "$SEND" --device sim:fault=write -o x.vms
	usage_case 2 "sim spec: dirty .* exceeds size" "$SEND" --device sim:size=4K,dirty=8K -o x.vms
	usage_case 2 "sim spec: fault_at needs fault=read" "$SEND" --device sim:fault_at=2 -o x.vms
	usage_case 2 "sim spec: empty item" "$SEND" --device sim:size=1M,,seed=2 -o x.vms
	usage_case 2 "sim spec: unknown profile" "$RECV" --device sim:profile=noise -i x.vms
	usage_case 2 "expected vfio:PATH\[,name=NAME\] or sim:KEY=VALUE" "$SEND" --device pci:0000:01:00.0 -o x.vms
	usage_case 2 "name= given twice" "$SEND" --device sim:name=a,name=b -o x.vms
	usage_case 2 "name= needs a value" "$SEND" --device vfio:/dev/vfio/devices/vfio0,name= -o x.vms
	usage_case 2 "both named 'dev1'" "$SEND" --device sim: --device sim: --device sim:name=dev1 -o x.vms
	usage_case 2 "--no-precopy is a device-mode option" "$SEND" --no-precopy -o x.vms in
	usage_case 2 "--precopy-rounds '0' is out of range" "$SEND" --device sim: --precopy-rounds 0 -o x.vms
	usage_case 2 "--no-precopy excludes --downtime-limit" \
		"$SEND" --device sim: --no-precopy --downtime-limit 10 -o x.vms
	usage_case 2 "--force applies to an OUTPUT file" "$RECV" --device sim: --force -i x.vms
	# a missing VFIO device, and a file that is not one: device errors
	usage_case 8 "VMS_EDEVIO: --device 'vfio:/nonexistent': device 'nonexistent': cannot open '/nonexistent': No such file" \
		"$SEND" --device vfio:/nonexistent -o x.vms
	usage_case 8 "VMS_EDEVIO: .*device 'gpu9': cannot open" \
		"$RECV" --device vfio:/nonexistent/vfio0,name=gpu9 -i x.vms
	usage_case 8 "not a VFIO device fd" "$SEND" --device vfio:/dev/null -o x.vms
	# nothing was created, and a receiver with a bad spec never listened
	usage_case 2 "sim spec" "$RECV" --device sim:size=0 --listen 127.0.0.1:0 --port-file port
	[ ! -e port ] || fail "the receiver listened despite a bad --device"
	[ -z "$(ls -A "$D" | grep -v '^err$')" ] || { ls -la "$D"; fail "files left"; }
	# --help documents the option and the exit code
	"$SEND" --help >send.help
	"$RECV" --help >recv.help
	grep -q -- "--device SPEC" send.help
	grep -q -- "--device SPEC" recv.help
	grep -q -- "--precopy-rounds N" send.help
	grep -q "8  device error" send.help
}

# ---- passes -------------------------------------------------------------------

uring_available() {
	# A real transfer with the engine forced: VMS_EUNSUPPORTED means no io_uring.
	local d="$tmp/probe" rc=0 rp port
	rm -rf "$d" && mkdir "$d"
	head -c 100000 /dev/urandom >"$d/in"
	VMS_IO=uring "$RECV" -q --listen 127.0.0.1:0 --port-file "$d/port" --accept-timeout 10 \
		"$d/out" 2>"$d/recv.err" &
	rp=$!
	port=$(wait_port "$d/port") || { kill -9 "$rp" 2>/dev/null; return 1; }
	VMS_IO=uring "$SEND" -q --to "127.0.0.1:$port" "$d/in" 2>"$d/send.err" || rc=$?
	wait "$rp" 2>/dev/null || rc=1
	[ "$rc" -eq 0 ] && return 0
	if grep -q VMS_EUNSUPPORTED "$d/send.err" "$d/recv.err"; then
		echo "e2e_device: io_uring unavailable: $(cat "$d/send.err" "$d/recv.err" | head -n 1)"
		return 1
	fi
	return 0 # something else: let the tests show it
}

PASS=usage
ENGINE=
run "usage: --device with INPUT/OUTPUT, bad sim specs, names, vfio: paths" t_usage

for PASS in ${VMS_E2E_DEVICE_PASSES-posix uring}; do
	case $PASS in
	posix | uring) ;;
	*) echo "e2e_device: unknown pass '$PASS' (posix, uring)" >&2; exit 2 ;;
	esac
	export VMS_IO=$PASS
	ENGINE=$([ "$PASS" = uring ] && echo io_uring || echo posix)
	if [ "$PASS" = uring ] && ! uring_available; then
		skip "io_uring unavailable: the uring pass is skipped"
		continue
	fi
	run "net: 6 devices, precopy, matched by name in another order" t_net_ok
	run "net: default names by position, 2 lanes, zstd, --precopy-rounds 3 --downtime-limit 1" t_net_lanes
	run "net: --no-precopy" t_net_no_precopy
	run "net: fault=read on a source device -> send 8, recv 6" t_net_source_read_fault
	run "net: fault=resume on a destination device -> recv 8, send 6" t_net_dest_resume_fault
	run "net: destination lacks a device -> recv 4, send 6" t_net_missing_device
	run "net: destination with another seed -> recv 8 at load end, send 6" t_net_wrong_seed
	run "file: snapshot, zstd, restored twice in another order" t_file_ok
	run "file: encrypted snapshot, --no-precopy, matched by position; no key -> 5" t_file_encrypted_no_precopy
	run "file: fault=read on a source device -> 8, no snapshot left" t_file_source_read_fault
	run "file: wrong seed / fault=resume -> 8, missing or partly matching names -> 4, extra -> warning" t_file_dest_faults
done

echo "e2e_device: $skipped skipped, $xfailed known library issues (XFAIL), $(($(date +%s) - T0)) s"
echo "e2e_device: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
