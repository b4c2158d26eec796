#!/bin/sh
# Makes the services' role, their six databases and the auditor's role. Run as a PostgreSQL
# administrator: PGHOST, PGPORT and PGUSER say where and as whom, as for psql.
#
#   DEPLOY_ROLE       the services' role (default kinfold)
#   DEPLOY_AUDITOR    the information-governance auditor's role (default auditor)
#   DEPLOY_DB_PREFIX  the databases' names begin with this (default kinfold_)
set -eu
ROLE=${DEPLOY_ROLE:-kinfold}
AUDITOR=${DEPLOY_AUDITOR:-auditor}
PREFIX=${DEPLOY_DB_PREFIX:-kinfold_}
# Give the roles passwords (createuser --pwprompt) unless the server trusts them otherwise.
createuser "$ROLE"
createuser "$AUDITOR"
for db in gateway midwifery ae gp health_visiting school_nursing; do
  createdb --owner "$ROLE" "$PREFIX$db"
done
