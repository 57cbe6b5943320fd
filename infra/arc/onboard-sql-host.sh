#!/usr/bin/env bash
# Onboards a hybrid SQL Server host to Azure Arc and sends its performance counters to
# Azure Monitor. Steps (each printed as "+ command" before it runs):
#   1. azcmagent connect            the machine becomes an Azure resource (on the host)
#   2. az login / az account set    for the Azure-side steps below
#   3. Arc SQL Server extension     {Linux,Windows}Agent.SqlServer: SQL inventory, Defender, backups
#   4. Azure Monitor Agent          AzureMonitor{Linux,Windows}Agent
#   5. data collection rule         dcr-perf-{linux,windows}.json, associated with the machine
# A service principal's secret is read from a config file (owner-only permissions) and is
# never put on a command line or printed: azcmagent reads it from a private --config file,
# az from "-p @file". --dry-run prints the commands without running anything.
# See infra/arc/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
usage: onboard-sql-host.sh --subscription-id GUID --resource-group NAME --location REGION
         --tenant-id GUID --workspace-id LOG_ANALYTICS_WORKSPACE_RESOURCE_ID
         [--auth device-code|service-principal] [--sp-config FILE]
         [--machine-name NAME] [--os linux|windows] [--license-type PAYG|Paid|LicenseOnly]
         [--dcr-name NAME] [--skip-connect] [--work-dir DIR] [--dry-run]

  --auth service-principal  reads client_id= and client_secret= from --sp-config FILE,
                            which must belong to you and be chmod 600 (or 400)
  --skip-connect            skip azcmagent connect (host already connected): run the
                            Azure-side steps from any machine with the az CLI
  --work-dir DIR            where the rendered DCR goes (default: a private temp dir,
                            removed at exit); secrets always go to a private temp dir
USAGE
}

die() { echo "error: $*" >&2; exit 1; }

SUBSCRIPTION="" RESOURCE_GROUP="" LOCATION="" TENANT="" WORKSPACE=""
AUTH="device-code" SP_CONFIG="" MACHINE="$(hostname -s 2>/dev/null || hostname)"
OS="linux" LICENSE="PAYG" DCR_NAME="hartonomous-sql-perf" SKIP_CONNECT=0 DRY_RUN=0 WORK_DIR=""
case "$(uname -s)" in MINGW* | MSYS* | CYGWIN*) OS="windows" ;; esac  # Git Bash on Windows

while [ $# -gt 0 ]; do
  case "$1" in
    --subscription-id) SUBSCRIPTION="${2:-}"; shift 2 ;;
    --resource-group) RESOURCE_GROUP="${2:-}"; shift 2 ;;
    --location) LOCATION="${2:-}"; shift 2 ;;
    --tenant-id) TENANT="${2:-}"; shift 2 ;;
    --workspace-id) WORKSPACE="${2:-}"; shift 2 ;;
    --auth) AUTH="${2:-}"; shift 2 ;;
    --sp-config) SP_CONFIG="${2:-}"; shift 2 ;;
    --machine-name) MACHINE="${2:-}"; shift 2 ;;
    --os) OS="${2:-}"; shift 2 ;;
    --license-type) LICENSE="${2:-}"; shift 2 ;;
    --dcr-name) DCR_NAME="${2:-}"; shift 2 ;;
    --work-dir) WORK_DIR="${2:-}"; shift 2 ;;
    --skip-connect) SKIP_CONNECT=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

# Every value below ends up in a command or in JSON: accept only what Azure accepts.
GUID='^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$'
NAME='^[A-Za-z0-9][A-Za-z0-9._()-]{0,89}$'
for required in SUBSCRIPTION:subscription-id RESOURCE_GROUP:resource-group LOCATION:location \
  TENANT:tenant-id WORKSPACE:workspace-id; do
  var="${required%%:*}"
  [ -n "${!var}" ] || { usage >&2; die "missing --${required#*:}"; }
done
[[ "$SUBSCRIPTION" =~ $GUID ]] || die "--subscription-id is not a GUID"
[[ "$TENANT" =~ $GUID ]] || die "--tenant-id is not a GUID"
[[ "$RESOURCE_GROUP" =~ $NAME ]] || die "--resource-group has characters Azure refuses"
[[ "$MACHINE" =~ $NAME ]] || die "--machine-name has characters Azure refuses"
[[ "$DCR_NAME" =~ $NAME ]] || die "--dcr-name has characters Azure refuses"
[[ "$LOCATION" =~ ^[a-z0-9]+$ ]] || die "--location is a region name such as westeurope"
[[ "$WORKSPACE" =~ ^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.OperationalInsights/workspaces/[A-Za-z0-9-]+$ ]] ||
  die "--workspace-id is a Log Analytics workspace resource ID (/subscriptions/.../workspaces/NAME)"
case "$OS" in linux) AGENT_OS="Linux" ;; windows) AGENT_OS="Windows" ;; *) die "--os is linux or windows" ;; esac
case "$LICENSE" in PAYG | Paid | LicenseOnly) ;; *) die "--license-type is PAYG, Paid or LicenseOnly" ;; esac
case "$AUTH" in device-code | service-principal) ;; *) die "--auth is device-code or service-principal" ;; esac

# The service principal's config file: owned by this user, readable by nobody else.
# Parsed line by line (never sourced), so it cannot run anything.
CLIENT_ID="" CLIENT_SECRET=""
if [ "$AUTH" = "service-principal" ]; then
  [ -n "$SP_CONFIG" ] || die "--auth service-principal needs --sp-config FILE"
  if [ ! -f "$SP_CONFIG" ] || [ -L "$SP_CONFIG" ]; then die "$SP_CONFIG is not a regular file"; fi
  [ "$(stat -c %u "$SP_CONFIG")" = "$(id -u)" ] || die "$SP_CONFIG must belong to $(id -un)"
  mode="$(stat -c %a "$SP_CONFIG")"
  [ $((8#$mode & 8#077)) -eq 0 ] || die "$SP_CONFIG is readable by others (mode $mode): chmod 600 $SP_CONFIG"
  while IFS= read -r line || [ -n "$line" ]; do
    line="${line%$'\r'}"  # a file saved on Windows
    case "$line" in
      client_id=*) CLIENT_ID="${line#client_id=}" ;;
      client_secret=*) CLIENT_SECRET="${line#client_secret=}" ;;
    esac
  done <"$SP_CONFIG"
  [[ "$CLIENT_ID" =~ $GUID ]] || die "$SP_CONFIG: client_id= is missing or not a GUID"
  [ -n "$CLIENT_SECRET" ] || die "$SP_CONFIG: client_secret= is missing"
fi

# Secrets go only into a private directory that is removed at exit, whatever happens.
umask 077
PRIVATE="$(mktemp -d)"
cleanup() { rm -rf "$PRIVATE"; }
trap cleanup EXIT
if [ -z "$WORK_DIR" ]; then WORK_DIR="$PRIVATE"; fi
mkdir -p "$WORK_DIR"

# Print each command (shell-quoted, so it can be pasted), then run it unless dry-run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

# JSON string escaping for the few values that go into files.
json_string() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

# Write a secret file; in a dry run, say what it would hold with the secret masked.
# printf is a bash builtin: the content is never in any process's argv.
write_secret() {
  local path="$1" content="$2" shown="$3"
  if [ "$DRY_RUN" -eq 1 ]; then
    echo "# would write $path (mode 600): $shown"
  else
    printf '%s' "$content" >"$path"
  fi
}

if [ "$DRY_RUN" -eq 0 ]; then
  [ "$SKIP_CONNECT" -eq 1 ] || command -v azcmagent >/dev/null ||
    die "azcmagent is not installed: see infra/arc/README.md (step 0)"
  command -v az >/dev/null || die "the Azure CLI (az) is not installed"
fi

MACHINE_ID="/subscriptions/$SUBSCRIPTION/resourceGroups/$RESOURCE_GROUP/providers/Microsoft.HybridCompute/machines/$MACHINE"
DCR_ID="/subscriptions/$SUBSCRIPTION/resourceGroups/$RESOURCE_GROUP/providers/Microsoft.Insights/dataCollectionRules/$DCR_NAME"

echo "# 1. connect the machine to Azure Arc"
if [ "$SKIP_CONNECT" -eq 1 ]; then
  echo "# skipped (--skip-connect): $MACHINE is already connected"
else
  connect=(azcmagent connect --subscription-id "$SUBSCRIPTION" --resource-group "$RESOURCE_GROUP"
    --location "$LOCATION" --tenant-id "$TENANT" --resource-name "$MACHINE"
    --tags "workload=hartonomous-sql")
  if [ "$AUTH" = "service-principal" ]; then
    write_secret "$PRIVATE/azcmagent-sp.json" \
      "{\"service-principal-id\": $(json_string "$CLIENT_ID"), \"service-principal-secret\": $(json_string "$CLIENT_SECRET")}" \
      "service-principal-id=$CLIENT_ID service-principal-secret=****"
    connect+=(--config "$PRIVATE/azcmagent-sp.json")
  else
    connect+=(--use-device-code)
  fi
  run "${connect[@]}"
fi

echo "# 2. sign in the Azure CLI for the Azure-side steps"
if [ "$AUTH" = "service-principal" ]; then
  write_secret "$PRIVATE/az-sp-secret" "$CLIENT_SECRET" "****"
  run az login --service-principal -u "$CLIENT_ID" -p "@$PRIVATE/az-sp-secret" --tenant "$TENANT" --output none
else
  run az login --use-device-code --tenant "$TENANT" --output none
fi
run az account set --subscription "$SUBSCRIPTION"
run az extension add --upgrade --name connectedmachine --only-show-errors
run az extension add --upgrade --name monitor-control-service --only-show-errors

ext=(az connectedmachine extension create --subscription "$SUBSCRIPTION"
  --resource-group "$RESOURCE_GROUP" --machine-name "$MACHINE" --location "$LOCATION")

echo "# 3. Arc-enabled SQL Server: inventory, best-practice assessment, Defender, backups"
run "${ext[@]}" --name "${AGENT_OS}Agent.SqlServer" --publisher Microsoft.AzureData \
  --type "${AGENT_OS}Agent.SqlServer" \
  --settings "{\"LicenseType\":\"$LICENSE\",\"SqlManagement\":{\"IsEnabled\":true}}"

echo "# 4. Azure Monitor Agent: collects what data collection rules ask for"
run "${ext[@]}" --name "AzureMonitor${AGENT_OS}Agent" --publisher Microsoft.Azure.Monitor \
  --type "AzureMonitor${AGENT_OS}Agent" --enable-auto-upgrade true

echo "# 5. data collection rule: performance counters every 60 s into the workspace"
template="$HERE/dcr-perf-$OS.json"
rule="$(<"$template")"
rule="${rule//__LOCATION__/$LOCATION}"
rule="${rule//__WORKSPACE_RESOURCE_ID__/$WORKSPACE}"
printf '%s\n' "$rule" >"$WORK_DIR/dcr-perf-$OS.json"
run az monitor data-collection rule create --subscription "$SUBSCRIPTION" \
  --resource-group "$RESOURCE_GROUP" --name "$DCR_NAME" --location "$LOCATION" \
  --rule-file "$WORK_DIR/dcr-perf-$OS.json"
run az monitor data-collection rule association create --name "$DCR_NAME-$MACHINE" \
  --rule-id "$DCR_ID" --resource "$MACHINE_ID"

echo "# done: $MACHINE_ID"
