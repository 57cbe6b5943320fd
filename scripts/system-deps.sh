#!/usr/bin/env bash
# Installs the Debian packages the app and its tests need, only when missing.
#   scripts/system-deps.sh       everything `make test` needs: Node.js and npm (Azurite),
#                                unixODBC and the SQLite3 ODBC driver (the pyodbc path)
#                                and the linter shellcheck (the tests lint
#                                infra/arc/onboard-sql-host.sh with it)
#   scripts/system-deps.sh run   what `make run` needs: Node.js and npm (Azurite); the app
#                                runs on SQLite through Python's sqlite3
set -euo pipefail
need=()
if [ "${1:-}" != "run" ]; then
  for pkg in unixodbc libsqliteodbc shellcheck; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
fi
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
