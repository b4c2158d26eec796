#!/bin/sh
# The information-governance auditor's check of every service's ledger (the gateway's records
# every disclosure; each adapter's what its feeds stored), as the role that may only read the
# ledgers. Each ledger's public key is fetched once and kept in keys/ (keep yours from a
# trusted source, not from the server under audit). Each run verifies every entry and
# signature, and that each ledger still extends the checkpoint the run before saved in
# checkpoints/; then saves new checkpoints.
#
#   DEPLOY_PG_AUDITOR  the server, as the auditor: postgres://auditor@db.example:5432
#   DEPLOY_DB_PREFIX   as for databases.sh
set -eu
PG=${DEPLOY_PG_AUDITOR:?set DEPLOY_PG_AUDITOR, e.g. postgres://auditor@127.0.0.1:5432}
mkdir -p keys checkpoints
for name in gateway midwifery ae gp health-visiting school-nursing; do
  db="$PG/${DEPLOY_DB_PREFIX:-kinfold_}$(echo "$name" | tr - _)"
  if [ ! -s "keys/$name" ]; then
    url=$(sed -n 's/^public_base_url = "\(.*\)"$/\1/p' "$name.toml")
    curl -sS --fail --cacert pki/ca.pem "$url/ledger/v1/public-key" | jq -r .public_key > "keys/$name"
  fi
  echo "$name:"
  if [ -f "checkpoints/$name.json" ]; then
    kinfold ledger verify --db "$db" --public-key "$(cat "keys/$name")" --checkpoint "checkpoints/$name.json"
  else
    kinfold ledger verify --db "$db" --public-key "$(cat "keys/$name")"
  fi
  kinfold ledger checkpoint --db "$db" > "checkpoints/$name.json.new"
  mv "checkpoints/$name.json.new" "checkpoints/$name.json"
done
