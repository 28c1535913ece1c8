#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The library's layers only point down (DESIGN.md "Layers"): a file in a
# layer includes headers of its own layer or of layers below it, never
# above. Order, bottom first; folders on one line are one layer:
#   base < format < stage crypto < pipeline < io < stream < session < device
# Inside a unit the pieces point down too: the public-call file (writer.c,
# reader.c, engine.c) is never included by anything.
set -euo pipefail
src=${1:-${VMS_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}}/libvmstream
rank() {
	case $1 in
	base) echo 0 ;; format) echo 1 ;; stage | crypto) echo 2 ;; pipeline) echo 3 ;;
	io) echo 4 ;; stream) echo 5 ;; session) echo 6 ;; device) echo 7 ;;
	*) echo -1 ;;
	esac
}
bad=0 files=0
for f in "$src"/*/*.[ch]; do
	layer=$(basename "$(dirname "$f")")
	r=$(rank "$layer")
	if [ "$r" -lt 0 ]; then
		echo "FAIL $f: folder '$layer' is in no layer (add it to tests/check_layers.sh)"
		bad=$((bad + 1))
		continue
	fi
	files=$((files + 1))
	while IFS= read -r inc; do
		dep=${inc%%/*}
		d=$(rank "$dep")
		if [ "$d" -lt 0 ] || [ "$d" -gt "$r" ]; then
			echo "FAIL ${f#"$src"/}: includes $inc (layer $dep is above $layer)"
			bad=$((bad + 1))
		fi
	done < <(sed -n 's/^#include "\([a-z]*\/[^"]*\)".*/\1/p' "$f")
done
if [ "$bad" -ne 0 ]; then
	echo "check_layers: $bad upward include(s)"
	exit 1
fi
echo "check_layers: $files files, every include points down or sideways within its layer"
