#!/bin/sh
# Run by the postgres image on the first start of an empty data volume (docker-entrypoint-initdb.d).
# Creates the hub's roles from hub-roles.psql (which the entrypoint itself skips: not *.sql).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner_password="${HUB_OWNER_PASSWORD:?set HUB_OWNER_PASSWORD for the schema owner role}" \
    -v app_password="${HUB_APP_PASSWORD:?set HUB_APP_PASSWORD for the hub application role}" \
    -f /docker-entrypoint-initdb.d/hub-roles.psql
