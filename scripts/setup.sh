#!/usr/bin/env bash
# One-shot setup: install dependencies, build Release into build/, then run
# the demo (scripts/demo.sh) if there is one. Tools land in build/bin/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc 2>/dev/null || echo 2)"

if [ -f scripts/demo.sh ]; then
	VMS_BUILD_DIR="$root/build" bash scripts/demo.sh
fi
