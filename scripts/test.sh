#!/usr/bin/env bash
# CI: install dependencies, then configure, build and test with warnings as
# errors in two trees, build-ci-release (Release) and build-ci-asan
# (ASan+UBSan), plus build-ci-tsan (ThreadSanitizer) when VMS_TSAN=1.
# The last line is always "test.sh: N passed, N failed"; a tree that fails to
# configure or build counts as one failure. Skipped tests (exit 77) count as
# neither and are listed on the line before. Exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
skipped=0
problems=()

# run_tree NAME CMAKE_ARGS... -- configure, build and test build-ci-NAME.
# Sanitizer trees also take their *SAN_OPTIONS from the caller's environment.
run_tree() {
	local name=$1
	shift
	local dir=build-ci-$name
	local log=$dir/ctest.log
	local rc=0 summary total nfail nskip
	local ctest_cmd=(ctest --output-on-failure -j2)

	echo "=== test.sh: $name: configure"
	if ! cmake -S . -B "$dir" -DVMS_WERROR=ON "$@"; then
		failed=$((failed + 1))
		problems+=("$name: configure failed")
		return 0
	fi
	echo "=== test.sh: $name: build"
	if ! cmake --build "$dir" -j "$jobs"; then
		failed=$((failed + 1))
		problems+=("$name: build failed")
		return 0
	fi

	# TSan's shadow layout clashes with high mmap randomisation; run it
	# with ASLR off (inherited by every test process) on such kernels.
	if [ "$name" = tsan ] &&
		[ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ]; then
		ctest_cmd=(setarch "$(uname -m)" -R "${ctest_cmd[@]}")
	fi

	echo "=== test.sh: $name: ctest"
	(cd "$dir" && "${ctest_cmd[@]}") 2>&1 | tee "$log" || rc=$?

	# "100% tests passed, 0 tests failed out of 12"
	summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" |
		tail -n 1 || true)
	if [ -z "$summary" ]; then
		failed=$((failed + 1))
		problems+=("$name: ctest printed no summary (exit $rc)")
		return 0
	fi
	total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
	nfail=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$summary")
	# ctest counts a skipped test as passed; we do not.
	nskip=$(grep -cE '^[[:space:]]*[0-9]+ - .* \(Skipped\)$' "$log" || true)

	passed=$((passed + total - nfail - nskip))
	failed=$((failed + nfail))
	skipped=$((skipped + nskip))
	if [ "$nfail" -gt 0 ]; then
		problems+=("$name: $nfail of $total tests failed")
	elif [ "$rc" -ne 0 ]; then
		failed=$((failed + 1))
		problems+=("$name: ctest exited $rc with no failed test")
	fi
	if [ "$total" -eq 0 ]; then
		failed=$((failed + 1))
		problems+=("$name: no tests registered")
	fi
	return 0
}

run_tree release -DCMAKE_BUILD_TYPE=Release

# -O1 -g without NDEBUG: asserts stay on, stacks stay readable.
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_tree asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
	-DVMS_SANITIZE=address,undefined
unset ASAN_OPTIONS UBSAN_OPTIONS

if [ "${VMS_TSAN:-0}" = 1 ]; then
	export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
	run_tree tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
		-DVMS_SANITIZE=thread
	unset TSAN_OPTIONS
fi

for problem in ${problems[@]+"${problems[@]}"}; do
	echo "test.sh: FAILED $problem"
done
if [ "$skipped" -gt 0 ]; then
	echo "test.sh: $skipped skipped (exit 77; see 'did not run' in the ctest output above)"
fi
echo "test.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
