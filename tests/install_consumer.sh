#!/usr/bin/env bash
# Installs a build tree into a scratch prefix, then builds and runs a small
# program against the installed copy four ways: pkg-config shared and static,
# find_package(vmstream) shared (vmstream::vmstream) and static
# (vmstream::vmstream_static). Proves the installed package works on its own.
#
# usage: install_consumer.sh BUILD_DIR [CONFIG]
# env:   CC, CMAKE, VMS_CONSUMER_FLAGS (the library's sanitizer flags, if any)
set -euo pipefail

build_dir=${1:?usage: install_consumer.sh BUILD_DIR [CONFIG]}
config=${2:-}
cc=${CC:-cc}
cmake=${CMAKE:-cmake}
consumer_flags=${VMS_CONSUMER_FLAGS:-}
read -r -a flags <<<"$consumer_flags"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vms-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

fail() {
	echo "install_consumer: $*" >&2
	exit 1
}

# Runs "$@" quietly; shows its output only if it fails.
quiet() {
	if ! "$@" >"$tmp/step.log" 2>&1; then
		cat "$tmp/step.log" >&2
		fail "failed: $*"
	fi
}

install_args=(--install "$build_dir" --prefix "$prefix")
[ -n "$config" ] && install_args+=(--config "$config")
quiet "$cmake" "${install_args[@]}"

pc_file=$(find "$prefix" -name vmstream.pc -print -quit)
[ -n "$pc_file" ] || fail "vmstream.pc not installed"
pc_dir=$(dirname "$pc_file")
libdir=$(dirname "$pc_dir")
[ -e "$libdir/libvmstream.a" ] || fail "libvmstream.a not installed in $libdir"
[ -e "$prefix/include/vmstream.h" ] || fail "vmstream.h not installed"

cat >"$tmp/main.c" <<'EOF'
#include <stdio.h>
#include <vmstream.h>

int main(void)
{
	const char *v = vms_version_string();

	return v && v[0] && printf("vmstream %s\n", v) > 0 ? 0 : 1;
}
EOF

# Fails unless program $1 runs and, if $2 is "shared", loads the installed
# libvmstream (not one from the build tree or the system).
check_program() {
	local prog=$1 kind=$2 deps
	quiet env LD_LIBRARY_PATH="$libdir" "$prog"
	deps=$(LD_LIBRARY_PATH="$libdir" ldd "$prog")
	if [ "$kind" = shared ]; then
		[[ $deps == *"$libdir/libvmstream.so"* ]] ||
			fail "$prog does not load $libdir/libvmstream.so"
	else
		[[ $deps != *libvmstream.so* ]] || fail "$prog needs libvmstream.so"
	fi
	echo "install_consumer: ok $(basename "$prog")"
}

# --- pkg-config --------------------------------------------------------------
pc() {
	PKG_CONFIG_PATH="$pc_dir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
		pkg-config --define-variable=prefix="$prefix" "$@"
}
pc --exists --print-errors vmstream || fail "pkg-config cannot resolve vmstream"
version=$(pc --modversion vmstream)
read -r -a cflags <<<"$(pc --cflags vmstream)"
read -r -a libs <<<"$(pc --libs vmstream)"
read -r -a static_libs <<<"$(pc --static --libs vmstream)"
# -lvmstream would pick the .so; the static link names the archive instead.
static_libs=("${static_libs[@]/#-lvmstream/-l:libvmstream.a}")

quiet "$cc" "${flags[@]}" -o "$tmp/pc_shared" "$tmp/main.c" "${cflags[@]}" "${libs[@]}"
check_program "$tmp/pc_shared" shared
quiet "$cc" "${flags[@]}" -o "$tmp/pc_static" "$tmp/main.c" "${cflags[@]}" "${static_libs[@]}"
check_program "$tmp/pc_static" static

# --- find_package --------------------------------------------------------------
mkdir "$tmp/cm"
cp "$tmp/main.c" "$tmp/cm/main.c"
cat >"$tmp/cm/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.16)
project(vms_consumer C)
find_package(vmstream ${version} REQUIRED COMPONENTS static)
if(NOT vmstream_DIR MATCHES "^${prefix}/")
	message(FATAL_ERROR "found vmstream in \${vmstream_DIR}, not under ${prefix}")
endif()
add_executable(cm_shared main.c)
target_link_libraries(cm_shared PRIVATE vmstream::vmstream)
add_executable(cm_static main.c)
target_link_libraries(cm_static PRIVATE vmstream::vmstream_static)
EOF
quiet "$cmake" -S "$tmp/cm" -B "$tmp/cm/build" \
	-DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_C_COMPILER="$cc" \
	-DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
	-DCMAKE_C_FLAGS="$consumer_flags" \
	-DCMAKE_EXE_LINKER_FLAGS="$consumer_flags"
quiet "$cmake" --build "$tmp/cm/build"
check_program "$tmp/cm/build/cm_shared" shared
check_program "$tmp/cm/build/cm_static" static

echo "install_consumer: vmstream $version installed and usable via pkg-config and find_package"
