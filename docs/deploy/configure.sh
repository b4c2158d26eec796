#!/bin/sh
# Writes the gateway's and the five adapters' configuration files, with new secrets, into the
# current directory (each readable by its owner only). Run in the directory the services will
# run in, after make-pki.sh has made ./pki there.
#
#   DEPLOY_PG            the server, as the services' role: postgres://kinfold@db.example:5432
#   DEPLOY_DB_PREFIX     the databases' names begin with this (default kinfold_)
#   DEPLOY_HOST          the host the services reach each other at (default localhost)
#   DEPLOY_GATEWAY_PORT  the gateway's HTTPS port (default 8443)
#   DEPLOY_ADAPTER_PORT  the first adapter's HTTPS port; the others take the next four (8081)
#   DEPLOY_MLLP_PORT     the A&E adapter's MLLP/TLS port (default 2575)
#   DEPLOY_AREA          the area's ODS code (default Q99)
set -eu
PG=${DEPLOY_PG:?set DEPLOY_PG, e.g. postgres://kinfold@127.0.0.1:5432}
PREFIX=${DEPLOY_DB_PREFIX:-kinfold_}
HOST=${DEPLOY_HOST:-localhost}
GATEWAY_PORT=${DEPLOY_GATEWAY_PORT:-8443}
port=${DEPLOY_ADAPTER_PORT:-8081}
MLLP_PORT=${DEPLOY_MLLP_PORT:-2575}
AREA=${DEPLOY_AREA:-Q99}
PKI=$(pwd)/pki
secret() { openssl rand -base64 48 | tr -d '\n'; }   # an HS256 key
seed() { openssl rand -base64 32 | tr -d '\n'; }     # an Ed25519 ledger seed
umask 077

events=""
adapters=""
for agency in midwifery ae gp health-visiting school-nursing; do
  key=$(secret)
  events="$events
[[event_keys]]
agency = \"$agency\"
kid = \"events-$agency\"
secret = \"$key\"
"
  adapters="$adapters
[[adapters]]
agency = \"$agency\"
url = \"https://$HOST:$port\"
"
  mllp=""
  if [ "$agency" = ae ]; then mllp="mllp_bind = \"0.0.0.0:$MLLP_PORT\""; fi
  cat > "$agency.toml" <<TOML
bind = "0.0.0.0:$port"
database_url = "$PG/$PREFIX$(echo "$agency" | tr - _)"
public_base_url = "https://$HOST:$port"
$mllp

[ledger]
signing_key = "$(seed)"

[tls]
cert = "$PKI/$agency-adapter.pem"
key = "$PKI/$agency-adapter-key.pem"
client_ca = "$PKI/ca.pem"
gateway_names = ["gateway.kinfold.internal"]
feed_names = ["feed.kinfold.internal"]

[outbox]
gateway_url = "https://$HOST:$GATEWAY_PORT"
tls = { ca = "$PKI/ca.pem", cert = "$PKI/adapter-client.pem", key = "$PKI/adapter-client-key.pem" }
kid = "events-$agency"
secret = "$key"
TOML
  port=$((port + 1))
done

cat > gateway.toml <<TOML
bind = "0.0.0.0:$GATEWAY_PORT"
database_url = "$PG/${PREFIX}gateway"
public_base_url = "https://$HOST:$GATEWAY_PORT"

[tls]
cert = "$PKI/gateway-server.pem"
key = "$PKI/gateway-server-key.pem"
client_ca = "$PKI/ca.pem"
adapter_names = ["adapter.kinfold.internal"]

[adapter_tls]
ca = "$PKI/ca.pem"
cert = "$PKI/gateway.pem"
key = "$PKI/gateway-key.pem"

[ledger]
signing_key = "$(seed)"

[[auth.keys]]
kid = "$(date +%Y-%m)"
secret = "$(secret)"

[disclosure]
area = "$AREA"
$adapters$events
TOML
echo "Wrote gateway.toml, midwifery.toml, ae.toml, gp.toml, health-visiting.toml and school-nursing.toml (owner only)."
