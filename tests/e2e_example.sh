#!/usr/bin/env bash
# The VMM example against an INSTALLED vmstream, built the ways a user would
# build it: `cmake --install` of the current build tree into a scratch
# prefix, then examples/ (a standalone CMake project) built
#   1. with find_package(vmstream)      (CMAKE_PREFIX_PATH=PREFIX),
#   2. with CMake and pkg-config        (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig),
#   3. with the compiler and pkg-config (cc vmm_migrate.c $(pkg-config ...)),
# and each vmm_migrate run with a small GPU (32M): exit 0, the installed
# libvmstream.so loaded (not the build tree's), one downtime line per device
# and the destination's verdict.
#
# env: VMS_BUILD_DIR, VMS_SOURCE_DIR (set by CTest; default build/ and the
# repository), CC and CMAKE (default: the build tree's compiler, cmake),
# VMS_EXAMPLE_GPU (default 32M). A sanitizer build tree (VMS_SANITIZE) gets
# the same -fsanitize flags for the consumer builds.
# Last line: "e2e_example: N passed, N failed".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=${VMS_SOURCE_DIR:-$root}
build=${VMS_BUILD_DIR:-$root/build}
gpu=${VMS_EXAMPLE_GPU:-32M}
cmake=${CMAKE:-cmake}

skip() {
	echo "e2e_example: SKIP: $*"
	exit 77
}
command -v "$cmake" >/dev/null || skip "cmake missing"
command -v pkg-config >/dev/null || skip "pkg-config missing"
[ -f "$build/CMakeCache.txt" ] || skip "no build tree at $build (set VMS_BUILD_DIR)"
[ -f "$src/examples/CMakeLists.txt" ] && [ -f "$src/examples/vmm_migrate.c" ] ||
	skip "examples/ incomplete in $src"

cache() { # cache VAR: a value from the build tree's CMakeCache.txt
	sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" | head -n 1
}
cc=${CC:-$(cache CMAKE_C_COMPILER)}
cc=${cc:-cc}
san=$(cache VMS_SANITIZE)
flags=""
[ -z "$san" ] || flags="-fsanitize=$san -fno-omit-frame-pointer"
read -r -a flag_arr <<<"$flags"
config=()
[ -z "$(cache CMAKE_CONFIGURATION_TYPES)" ] || config=(--config "${VMS_CONFIG:-Release}")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2e_example.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
passed=0
failed=0

# quiet LOG CMD...: run CMD, its output in LOG; shown only if it fails.
quiet() {
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		sed 's/^/    | /' "$log"
		echo "    failed: $*"
		return 1
	fi
}

# check_run NAME PROGRAM: vmm_migrate runs against the installed library.
check_run() {
	local name=$1 prog=$2 out=$tmp/$1.out deps n
	if ! LD_LIBRARY_PATH="$libdir" timeout 300 "$prog" "$gpu" >"$out" 2>&1; then
		sed 's/^/    | /' "$out"
		echo "    $name: vmm_migrate $gpu failed"
		return 1
	fi
	deps=$(LD_LIBRARY_PATH="$libdir" ldd "$prog")
	if [[ $deps != *"$libdir/libvmstream.so"* ]]; then
		echo "$deps" | sed 's/^/    | /'
		echo "    $name: does not load $libdir/libvmstream.so"
		return 1
	fi
	# one line per device: name, precopy, stop-copy, estimate, downtime
	n=$(grep -Ec '^  (gpu0|qat[0-3]|hisi0) +[0-9]+ B +[0-9]+ B +[0-9]+ B +[0-9]+\.[0-9]+ ms$' "$out" || true)
	if [ "$n" -ne 6 ] || ! grep -q '^destination loaded and validated every device$' "$out" ||
		! grep -q '^done in .* precopy rounds, estimated downtime .* ms, measured .* ms' "$out"; then
		sed 's/^/    | /' "$out"
		echo "    $name: expected 6 per-device downtime lines and the verdict (got $n lines)"
		return 1
	fi
	sed -n 's/^done in /    done in /p' "$out"
}

step() { # step NAME FUNC: one reported case
	local name=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		echo "PASS $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name"
	fi
}

# ---- install ----------------------------------------------------------------

quiet "$tmp/install.log" "$cmake" --install "$build" --prefix "$prefix" "${config[@]}" ||
	{ echo "e2e_example: cmake --install failed"; echo "e2e_example: 0 passed, 1 failed"; exit 1; }
pc_file=$(find "$prefix" -name vmstream.pc -print -quit)
cfg_file=$(find "$prefix" -name vmstreamConfig.cmake -print -quit)
if [ -z "$pc_file" ] || [ -z "$cfg_file" ]; then
	echo "e2e_example: the install lacks vmstream.pc or vmstreamConfig.cmake"
	echo "e2e_example: 0 passed, 1 failed"
	exit 1
fi
pc_dir=$(dirname "$pc_file")
libdir=$(dirname "$pc_dir")
# vmstream.pc names the prefix the tree was configured with; --install
# --prefix does not rewrite it, so pkg-config is told where it now is.
pc_args=(--define-variable=prefix="$prefix")

# ---- the three builds ---------------------------------------------------------

cmake_example() { # cmake_example NAME ARGS...: configure and build examples/
	local name=$1 b=$tmp/$1
	shift
	quiet "$tmp/$name.configure.log" env PKG_CONFIG_PATH="$pc_dir" "$cmake" \
		-S "$src/examples" -B "$b" \
		-DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_C_COMPILER="$cc" \
		-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
		-DCMAKE_C_FLAGS="$flags" \
		-DCMAKE_EXE_LINKER_FLAGS="$flags" \
		"$@" || return 1
	quiet "$tmp/$name.build.log" "$cmake" --build "$b" || return 1
	check_run "$name" "$b/vmm_migrate"
}

t_find_package() {
	cmake_example find_package -DCMAKE_PREFIX_PATH="$prefix" || return 1
	# it found the scratch install, not another one
	grep -q "vmstream .* from $prefix/" "$tmp/find_package.configure.log" ||
		{ cat "$tmp/find_package.configure.log"; echo "    not found under $prefix"; return 1; }
}

t_cmake_pkgconfig() {
	# no CMAKE_PREFIX_PATH: only pkg-config can find it
	cmake_example cmake_pkgconfig -DVMS_EXAMPLES_PKGCONFIG=ON \
		"-DPKG_CONFIG_ARGN=${pc_args[*]}" || return 1
	grep -q "from pkg-config ($prefix/" "$tmp/cmake_pkgconfig.configure.log" ||
		{ cat "$tmp/cmake_pkgconfig.configure.log"; echo "    pkg-config did not point at $prefix"; return 1; }
}

t_cc_pkgconfig() {
	local cflags libs
	cflags=$(PKG_CONFIG_PATH="$pc_dir" pkg-config "${pc_args[@]}" --cflags vmstream) || return 1
	libs=$(PKG_CONFIG_PATH="$pc_dir" pkg-config "${pc_args[@]}" --libs vmstream) || return 1
	read -r -a cflags <<<"$cflags"
	read -r -a libs <<<"$libs"
	quiet "$tmp/cc.log" "$cc" "${flag_arr[@]}" -std=gnu11 -Wall -Wextra -Werror \
		-o "$tmp/vmm_migrate_cc" "$src/examples/vmm_migrate.c" "${cflags[@]}" "${libs[@]}" ||
		return 1
	check_run cc_pkgconfig "$tmp/vmm_migrate_cc"
}

step "find_package(vmstream) with CMAKE_PREFIX_PATH, vmm_migrate $gpu" t_find_package
step "CMake + pkg-config (PKG_CONFIG_PATH), vmm_migrate $gpu" t_cmake_pkgconfig
step "cc vmm_migrate.c \$(pkg-config --cflags --libs vmstream), vmm_migrate $gpu" t_cc_pkgconfig

echo "e2e_example: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
