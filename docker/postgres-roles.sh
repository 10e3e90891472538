#!/bin/sh
# One login role per subgraph (compose; runs once, on an empty data directory, after init.sql):
# crm_<name> owns crm_<name> and may connect to nothing else, so a compromised subgraph reads and
# writes its own database only. Passwords: <NAME>_DB_PASSWORD (docker-compose.yml).
set -eu
for name in auth customer sales_activity opportunity analytics; do
  var="$(echo "$name" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
  eval "password=\${$var}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v role="crm_$name" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER DATABASE :"role" OWNER TO :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"role" TO :"role";
SQL
done
