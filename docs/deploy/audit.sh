#!/bin/sh
# The information-governance auditor's check, as the role that may only read the ledger. The
# ledger's public key is fetched once and kept (keep yours from a trusted source, not from the
# server under audit). Each run verifies every entry and signature, and that the ledger still
# extends the checkpoint saved by the run before; then saves a new checkpoint.
#
#   DEPLOY_PG_AUDITOR  the server, as the auditor: postgres://auditor@db.example:5432
#   DEPLOY_DB_PREFIX   as for databases.sh
set -eu
PG=${DEPLOY_PG_AUDITOR:?set DEPLOY_PG_AUDITOR, e.g. postgres://auditor@127.0.0.1:5432}
DB="$PG/${DEPLOY_DB_PREFIX:-kinfold_}gateway"
GATEWAY=$(sed -n 's/^public_base_url = "\(.*\)"$/\1/p' gateway.toml)
if [ ! -s ledger-key.txt ]; then
  curl -sS --fail --cacert pki/ca.pem "$GATEWAY/ledger/v1/public-key" | jq -r .public_key > ledger-key.txt
fi
if [ -f checkpoint.json ]; then
  kinfold ledger verify --db "$DB" --public-key "$(cat ledger-key.txt)" --checkpoint checkpoint.json
else
  kinfold ledger verify --db "$DB" --public-key "$(cat ledger-key.txt)"
fi
kinfold ledger checkpoint --db "$DB" > checkpoint.json.new
mv checkpoint.json.new checkpoint.json
