# SPDX-License-Identifier: MIT
# Harness shared by the end-to-end suites (e2e_file.sh, e2e_net.sh,
# e2e_device.sh): tool lookup, a scratch directory, tests run in watched
# subshells with their background processes killed at the end, and the waits
# for events (a port file, an exit status, output under way). (Named so that
# the e2e_*.sh glob of tests/CMakeLists.txt does not take it for a suite.)
# Source it after setting:
#   SUITE         the suite's name (messages, scratch directory)
#   root          the source tree
#   TEST_TIMEOUT  seconds before a test's watchdog ends it
#   XFAIL_RC      optional: a test exiting with it counts as a known issue
#                 (XFAIL), unless XFAIL_STRICT is non-empty
# PASS names the current pass in test names; $D is a test's directory.

find_tool() { # find_tool VAR NAME [optional]
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
	[ -n "${3:-}" ] && return
	echo "$SUITE: $name not found; build first or set $var" >&2
	exit 77
}
need() { # need COMMAND...: skip the suite (77) without them
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || { echo "$SUITE: $c missing" >&2; exit 77; }
	done
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/$SUITE.XXXXXX")
CUR_TEST=
# kill_tree PID: PID and all its descendants, by process id, with SIGKILL.
kill_tree() {
	local c
	for c in $(pgrep -P "$1" 2>/dev/null); do
		kill_tree "$c"
	done
	kill -9 "$1" 2>/dev/null || true
}
trap '[ -z "$CUR_TEST" ] || kill_tree "$CUR_TEST"; rm -rf "$tmp"' EXIT

passed=0
failed=0
skipped=0
xfailed=0
T0=$(date +%s)

# Background processes of the current test; killed when the test ends.
BG=()
bg_kill() {
	local p c
	for p in "${BG[@]}"; do
		# the tool runs as a child of a subshell that records its status
		for c in $(pgrep -P "$p" 2>/dev/null); do
			kill -9 "$c" 2>/dev/null || true
		done
		kill -9 "$p" 2>/dev/null || true
	done
	for p in "${BG[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	BG=()
}

# run NAME FUNC ARGS...: FUNC in a subshell with `set -e` (asynchronous, see
# e2e_file.sh), killed by a watchdog after TEST_TIMEOUT seconds.
run() {
	local name="[$PASS] $1" rc=0 pid dog
	shift
	(
		set -e
		trap 'bg_kill' EXIT
		trap 'echo "test timed out after ${TEST_TIMEOUT}s" >&2; exit 124' TERM
		"$@"
	) >"$tmp/log" 2>&1 &
	pid=$!
	CUR_TEST=$pid
	# The watchdog asks first (the test's traps then kill what it started),
	# then kills the whole tree. Its sleeps bound a hang, they wait for
	# nothing: a test that ends kills its watchdog at once.
	(
		sleep "$TEST_TIMEOUT"
		kill -TERM "$pid" 2>/dev/null || exit 0
		sleep 5
		kill_tree "$pid"
	) &
	dog=$!
	wait "$pid" || rc=$?
	CUR_TEST=
	kill_tree "$dog"
	wait "$dog" 2>/dev/null || true
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS $name"
	elif [ -n "${XFAIL_RC:-}" ] && [ "$rc" -eq "$XFAIL_RC" ] && [ -z "${XFAIL_STRICT:-}" ]; then
		xfailed=$((xfailed + 1))
		echo "XFAIL $name"
		sed 's/^/    /' "$tmp/log"
	else
		failed=$((failed + 1))
		echo "FAIL $name (exit $rc)"
		sed 's/^/    /' "$tmp/log"
	fi
	[ -z "${VMS_E2E_VERBOSE:-}" ] || sed 's/^/    | /' "$tmp/log"
}
skip() {
	skipped=$((skipped + 1))
	echo "SKIP [$PASS] $*"
}
fail() { echo "$*" >&2; return 1; }
newdir() { # newdir NAME: a fresh directory for one test, path in $D
	D="$tmp/$PASS.$1"
	rm -rf "$D" && mkdir "$D"
}
no_leftovers() {
	local left
	left=$(find "$1" -maxdepth 1 -name '.*.vms-*' | head -n 1)
	[ -z "$left" ] || fail "temporary file left behind: $left"
}
psk() { (umask 077 && openssl rand -hex 32 >"$1"); }

# ---- waits --------------------------------------------------------------
# A test waits for the event it needs, never for a guessed time. The events
# are files (a port file, an exit-status file, a temporary output growing),
# which have no notification in a shell: wait_for looks every 50 ms. The
# bound, E2E_WAIT seconds unless given, only ends a hang.
E2E_WAIT=${VMS_E2E_WAIT:-30}

# wait_for SECONDS WHAT CMD...: until CMD succeeds; fail "WHAT" after SECONDS.
wait_for() {
	local secs=$1 what=$2 end
	shift 2
	end=$((SECONDS + secs))
	until "$@"; do
		[ "$SECONDS" -le "$end" ] || fail "$what (waited ${secs}s)" || return
		sleep 0.05
	done
}

# wait_port FILE: wait for a port file, print the port. (The tools write it
# under a temporary name and rename it: a non-empty one is complete.)
wait_port() {
	wait_for "$E2E_WAIT" "no port in $1" test -s "$1" && cat "$1"
}

# wait_rc RCFILE PID [SECONDS]: wait for a background tool, print its exit
# status. Status files are written under a temporary name and renamed, so a
# non-empty file is a complete one.
wait_rc() {
	local f=$1 pid=$2 secs=${3:-$E2E_WAIT}
	wait_for "$secs" "process $pid still running" test -s "$f" || return
	wait "$pid" 2>/dev/null || true
	cat "$f"
}

# has_tmp_data DIR: a tool's temporary output file in DIR holds data, i.e.
# the stream is under way.
has_tmp_data() {
	[ -n "$(find "$1" -maxdepth 1 -name '.*.vms-*' -size +0c 2>/dev/null | head -n 1)" ]
}
# wait_tmp_data DIR: wait until it does.
wait_tmp_data() {
	wait_for "$E2E_WAIT" "no output under way in $1" has_tmp_data "$1"
}
