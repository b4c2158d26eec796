#!/bin/sh
# Brings every database to this release of kinfold, then lets the auditor read each service's
# ledger (its entries and signed tree heads) and nothing else. Run at installation and at
# every upgrade, before starting the services.
#
#   DEPLOY_PG         the server, as the services' role: postgres://kinfold@db.example:5432
#   DEPLOY_AUDITOR, DEPLOY_DB_PREFIX as for databases.sh
set -eu
PG=${DEPLOY_PG:?set DEPLOY_PG, e.g. postgres://kinfold@127.0.0.1:5432}
AUDITOR=${DEPLOY_AUDITOR:-auditor}
PREFIX=${DEPLOY_DB_PREFIX:-kinfold_}
for db in gateway midwifery ae gp health_visiting school_nursing; do
  kinfold migrate --db "$PG/$PREFIX$db"
  psql -v ON_ERROR_STOP=1 -q -d "$PG/$PREFIX$db" \
    -c "GRANT SELECT ON ledger_entries, ledger_tree_heads TO $AUDITOR"
done
