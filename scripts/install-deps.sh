#!/usr/bin/env bash
# Installs the Debian 12 packages vmstream needs to build, test and benchmark.
# Idempotent: apt runs only when a package on the list is missing.
# VMS_SKIP_DEPS=1 skips this step (for machines provisioned another way).
set -euo pipefail

packages=(
	build-essential cmake pkg-config
	clang libclang-rt-14-dev        # libFuzzer and sanitizer runtimes for clang
	libzstd-dev libssl-dev liburing-dev libxxhash-dev
	check libsubunit-dev            # unit test framework
	zstd xxhash openssl             # reference tools used by tests
	iperf3 socat netcat-openbsd iproute2 procps time python3 # e2e and bench scripts
	python3-xxhash python3-zstandard python3-cryptography # tests/ref/vmsread.py (ref_vectors)
)

if [ "${VMS_SKIP_DEPS:-0}" = 1 ]; then
	echo "install-deps.sh: skipped (VMS_SKIP_DEPS=1)"
	exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps.sh: not a Debian system; install these yourself or set VMS_SKIP_DEPS=1:" >&2
	echo "  ${packages[*]}" >&2
	exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps.sh: all ${#packages[@]} packages present"
	exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps.sh: need root or sudo to install: ${missing[*]}" >&2
		exit 1
	fi
	sudo=(sudo)
fi

echo "install-deps.sh: installing ${missing[*]}"
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update
${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends "${missing[@]}"
