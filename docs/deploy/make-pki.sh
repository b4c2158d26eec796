#!/bin/sh
# Makes the trust authority and every certificate of the walkthrough in the current directory.
set -eu
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes \
  -keyout ca-key.pem -out ca.pem -days 3650 -subj "/CN=Kinfold trust authority" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
# issue NAME USAGE SUBJECT_ALT_NAMES: a P-256 key and a certificate signed by the authority.
issue() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1-key.pem" -out "$1.csr" -subj "/CN=$1"
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n' "$3" "$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -out "$1.pem" -days 825 -extfile "$1.ext"
  rm "$1.csr" "$1.ext"
  chmod 600 "$1-key.pem"
}
issue gateway-server serverAuth "DNS:kinfold.example.nhs.uk,DNS:localhost,IP:127.0.0.1"
issue gateway       clientAuth "DNS:gateway.kinfold.internal"
issue adapter-client clientAuth "DNS:adapter.kinfold.internal"
issue feed          clientAuth "DNS:feed.kinfold.internal"
for agency in midwifery ae gp health-visiting school-nursing; do
  issue "$agency-adapter" serverAuth "DNS:$agency-adapter,DNS:localhost,IP:127.0.0.1"
done
