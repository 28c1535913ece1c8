#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Make throw-away X.509 material for the TLS tests in directory $1 (created if
# missing), with the openssl command-line tool. EC P-256 keys, PEM, no
# passphrases, keys mode 0600. Never use these anywhere else.
#
#   ca.pem ca.key                  the trusted test CA
#   server.pem server.key          leaf signed by ca, EKU serverAuth
#   client.pem client.key          leaf signed by ca, EKU clientAuth
#   other-ca.pem other-ca.key      a second CA nobody trusts
#   other-server.pem/.key          server leaf signed by other-ca
#   other-client.pem/.key          client leaf signed by other-ca
#   selfsigned.pem/.key            self-signed server certificate
#   expired-server.pem/.key        server leaf signed by ca, expired in 2001
#   chain-server.pem/.key          server leaf signed by an intermediate CA
#                                  (file holds leaf + intermediate)
#   garbage.pem                    not PEM at all
#
# Exit status: 0 on success, 77 if openssl is missing, 1 on any failure.
set -euo pipefail

dir=${1:?usage: tls_certs.sh DIR}
command -v openssl >/dev/null 2>&1 || { echo "tls_certs.sh: no openssl" >&2; exit 77; }
mkdir -p "$dir"
cd "$dir"
umask 077

days=30
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME SUBJECT
ca() {
	newkey "$1.key"
	openssl req -new -x509 -key "$1.key" -out "$1.pem" -days "$days" -subj "$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash"
}

# leaf NAME SUBJECT ISSUER EKU [extra x509 args...]
leaf() {
	local name=$1 subj=$2 issuer=$3 eku=$4
	shift 4
	newkey "$name.key"
	openssl req -new -key "$name.key" -out "$name.csr" -subj "$subj"
	cat >"$name.ext" <<-EOF
		basicConstraints=critical,CA:FALSE
		keyUsage=critical,digitalSignature
		extendedKeyUsage=$eku
		subjectKeyIdentifier=hash
		authorityKeyIdentifier=keyid
	EOF
	openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" \
		-set_serial "0x$(openssl rand -hex 8)" -days "$days" \
		-extfile "$name.ext" -out "$name.pem" "$@" 2>/dev/null
	rm -f "$name.csr" "$name.ext"
}

ca ca "/O=vmstream test/CN=vmstream test CA"
ca other-ca "/O=someone else/CN=untrusted CA"

leaf server "/O=vmstream test/CN=vmstream-test-server" ca serverAuth
leaf client "/O=vmstream test/CN=vmstream-test-client" ca clientAuth
leaf other-server "/O=someone else/CN=other-server" other-ca serverAuth
leaf other-client "/O=someone else/CN=other-client" other-ca clientAuth

# Intermediate CA under ca, and a server leaf under it (chain file = leaf+int).
newkey int-ca.key
openssl req -new -key int-ca.key -out int-ca.csr -subj "/O=vmstream test/CN=vmstream test intermediate"
printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" \
	"keyUsage=critical,keyCertSign,cRLSign" "subjectKeyIdentifier=hash" \
	"authorityKeyIdentifier=keyid" >int-ca.ext
openssl x509 -req -in int-ca.csr -CA ca.pem -CAkey ca.key -set_serial 0x1001 \
	-days "$days" -extfile int-ca.ext -out int-ca.pem 2>/dev/null
rm -f int-ca.csr int-ca.ext
leaf chain-leaf "/O=vmstream test/CN=vmstream-test-chain-server" int-ca serverAuth
cat chain-leaf.pem int-ca.pem >chain-server.pem
mv chain-leaf.key chain-server.key
rm -f chain-leaf.pem

newkey selfsigned.key
openssl req -new -x509 -key selfsigned.key -out selfsigned.pem -days "$days" \
	-subj "/CN=self-signed-server" -addext "extendedKeyUsage=serverAuth"

# An expired leaf: `openssl x509 -req` cannot back-date, `openssl ca` can.
newkey expired-server.key
openssl req -new -key expired-server.key -out expired-server.csr \
	-subj "/O=vmstream test/CN=expired-server"
mkdir -p ca-db
: >ca-db/index.txt
echo 1000 >ca-db/serial
cat >ca-db/ca.cnf <<EOF
[ ca ]
default_ca = test_ca
[ test_ca ]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = leaf_ext
[ any ]
organizationName = optional
commonName = supplied
[ leaf_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
EOF
openssl ca -batch -notext -config ca-db/ca.cnf -cert ca.pem -keyfile ca.key \
	-startdate 20000101000000Z -enddate 20010101000000Z \
	-in expired-server.csr -out expired-server.pem 2>/dev/null
rm -rf ca-db expired-server.csr

echo "this is not a PEM file" >garbage.pem
chmod 600 ./*.key
chmod 644 ./*.pem
