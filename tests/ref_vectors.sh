#!/bin/bash
# ref_vectors: read every vector of tests/vectors with tests/ref/vmsread.py, an
# independent reader written from FORMAT.md alone, and compare its verdict, error
# code and location with tests/vectors/expected.txt and tests/vectors/README.md.
# Encrypted valid vectors are also read without a key (VMS_EKEY) and with
# another key (VMS_EAUTH), as README.md says.
# Exit 0 if all agree, 1 otherwise, 77 if /usr/bin/python3 lacks a module.
set -u
here=$(cd "$(dirname "$0")" && pwd)
vec="$here/vectors"
ref="$here/ref/vmsread.py"
py=/usr/bin/python3

if [ ! -x "$py" ] || ! "$py" -c 'import xxhash, zstandard, cryptography.hazmat.primitives.ciphers.aead' 2>/dev/null; then
	echo "ref_vectors: skipped: $py lacks xxhash, zstandard or cryptography (scripts/install-deps.sh)"
	exit 77
fi

declare -A NAME=(
	[0]=OK [-4]=VMS_ETRUNCATED [-5]=VMS_EMAGIC [-6]=VMS_EVERSION [-7]=VMS_EPREAMBLE
	[-8]=VMS_EHDRSUM [-9]=VMS_EPAYLOADSUM [-10]=VMS_ELENGTH [-11]=VMS_ESEQ
	[-12]=VMS_EOFFSET [-13]=VMS_ERECTYPE [-14]=VMS_EDEVICE [-15]=VMS_EDIGEST
	[-16]=VMS_EEOS [-17]=VMS_ETRAILING [-18]=VMS_ECODEC [-19]=VMS_EDECOMPRESS
	[-20]=VMS_EAUTH [-21]=VMS_EKEY [-22]=VMS_EPEERABORT [-25]=VMS_EFLAGS
	[-28]=VMS_EUNSUPPORTED [-33]=VMS_EEPOCH [-34]=VMS_ERESERVED [-37]=VMS_EPHASE
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# a key that is not the vectors' key (first digit changed)
sed '1s/^./f/' "$vec/vectors.key" >"$tmp/other.key"

# location of each invalid vector, from README.md:
#   ### `NAME` — ... / The error message starts with `LOCATION[: text]`.
declare -A LOC=()
cur=
while IFS= read -r line; do
	if [[ $line =~ ^###\ \`([A-Za-z0-9_]+)\` ]]; then
		cur=${BASH_REMATCH[1]}
	elif [[ -n $cur && $line =~ The\ error\ message\ starts\ with\ \`([^\`:]*) ]]; then
		LOC[$cur]=${BASH_REMATCH[1]}
	fi
done <"$vec/README.md"

pass=0 fail=0
check() { # label want got
	if [ "$2" = "$3" ]; then
		echo "PASS $1: $3"; pass=$((pass + 1))
	else
		echo "FAIL $1: expected '$2', got '$3'"; fail=$((fail + 1))
	fi
}

seen=0
while read -r name code key; do
	[ -n "$name" ] || continue
	seen=$((seen + 1))
	f="$vec/$name.vms"
	args=()
	[ "${key:-}" = key ] && args=(--key "$vec/vectors.key")
	got=$("$py" "$ref" "${args[@]}" "$f" 2>&1)
	if [ -z "${NAME[$code]+x}" ]; then
		check "$name" "code $code" "$got"; continue
	fi
	if [ "$code" = 0 ]; then
		want=OK
	elif [ -n "${LOC[$name]+x}" ]; then
		want="ERR ${NAME[$code]} ${LOC[$name]}"
	else
		want="ERR ${NAME[$code]} (no location in README.md)"
	fi
	check "$name" "$want" "$got"
	if [ "$code" = 0 ] && [ "${key:-}" = key ]; then
		got=$("$py" "$ref" "$f" 2>&1)
		check "$name (no key)" "ERR VMS_EKEY preamble at byte 0" "$got"
		got=$("$py" "$ref" --key "$tmp/other.key" "$f" 2>&1)
		check "$name (other key)" "ERR VMS_EAUTH record 0" "${got% at byte *}"
	fi
done <"$vec/expected.txt"

nvms=$(ls "$vec"/*.vms | wc -l)
check "every .vms listed in expected.txt" "$nvms" "$seen"

echo "ref_vectors: $pass passed, $fail failed"
[ "$fail" = 0 ]
