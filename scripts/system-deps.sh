#!/usr/bin/env bash
# Installs the Debian packages the app and its tests need, only when missing
# (shellcheck: the tests lint infra/arc/onboard-sql-host.sh).
set -euo pipefail
need=()
for pkg in unixodbc libsqliteodbc shellcheck; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing Debian packages: ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
