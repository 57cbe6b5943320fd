#!/bin/sh
# azd postdeploy: what can only happen once the app runs.
#  1. Subscribe the blob trigger to BlobCreated events of the models container (the
#     Flex Consumption blob trigger uses the Event Grid source; its webhook key exists
#     only once the app is deployed).
#  2. Apply the SQL migrations inside Azure, with the app's own identity, so the first
#     request does not.
# Keys are read into variables and never printed, nor put on any command line.
set -eu

for cmd in az azd curl; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "postdeploy: $cmd is not installed" >&2; exit 1; }
done

# A folder of this hook's own, that only this user can enter, for the files it writes:
# the environment's values, and the webhook URL and key header that az and curl read
# from files because any user of this machine can read a command line (ps,
# /proc/<pid>/cmdline). umask makes each file readable by this user only. The folder is
# removed when the hook ends, whether or not it succeeded; sh runs an EXIT trap only on
# exit, so a hang-up, interrupt or termination ends the hook through exit.
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 700 "$work"

# The outputs of infra/main.bicep, as azd keeps them for this environment (KEY="value"
# lines; read as data, never evaluated).
values="$work/values.env"
azd env get-values >"$values"
while IFS='=' read -r key value; do
  case "$key" in
    [A-Z_]*) value=${value#\"}; value=${value%\"}; export "$key=$value" ;;
  esac
done <"$values"
: "${RESOURCE_GROUP:?}" "${AZURE_FUNCTION_APP_NAME:?}" "${SERVICE_API_BASE_URL:?}"
: "${EVENT_GRID_SYSTEM_TOPIC_NAME:?}" "${MODELS_CONTAINER:?}" "${BLOB_TRIGGER_FUNCTION:?}"

# The blobs_extension system key exists only once the host has started and set up the
# blob trigger's Event Grid extension, a little after the deployment: ask again until it
# appears, for at most 30 tries 10 s apart (postdeploy.ps1 waits the same).
tries=0
until blobs_key=$(az functionapp keys list -g "$RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" \
    --query "systemKeys.blobs_extension" -o tsv) && [ -n "$blobs_key" ]; do
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then
    echo "postdeploy: the app has no blobs_extension key after 30 tries in 5 minutes: its host has not started the blob trigger; see the app's logs, then run 'azd deploy' again" >&2
    exit 1
  fi
  sleep 10
done
master_key=$(az functionapp keys list -g "$RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" \
  --query "masterKey" -o tsv)
if [ -z "$master_key" ]; then
  echo "postdeploy: the app has no master key yet; run 'azd deploy' again" >&2
  exit 1
fi

# az reads the URL, which holds the key, from the file an `@<file>` argument names (its
# form for any argument). printf is built into sh, so writing the file starts no process.
webhook="${SERVICE_API_BASE_URL}/runtime/webhooks/blobs?functionName=Host.Functions.${BLOB_TRIGGER_FUNCTION}&code=${blobs_key}"
endpoint="$work/endpoint.txt"
printf '%s' "$webhook" >"$endpoint"
echo "Subscribing ${BLOB_TRIGGER_FUNCTION} to BlobCreated in container ${MODELS_CONTAINER}"
az eventgrid system-topic event-subscription create \
  --name "models-blob-created" \
  --resource-group "$RESOURCE_GROUP" \
  --system-topic-name "$EVENT_GRID_SYSTEM_TOPIC_NAME" \
  --endpoint-type webhook \
  --endpoint "@$endpoint" \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with "/blobServices/default/containers/${MODELS_CONTAINER}/blobs/" \
  --subject-ends-with ".onnx" \
  --output none

echo "Applying SQL migrations"
# curl reads the master key's header from a file too (`-H @<file>`).
headers="$work/headers.txt"
printf 'x-functions-key: %s\n' "$master_key" >"$headers"
tries=0
until curl -fsS -X POST -H "@$headers" \
    "${SERVICE_API_BASE_URL}/api/database/migrate"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 6 ]; then
    echo "postdeploy: migrations failed; see GET /api/ready/details and the app's logs" >&2
    exit 1
  fi
  sleep 10  # a fresh Flex Consumption app starts its first instance
done
echo
echo "Deployed: ${SERVICE_API_BASE_URL}/api/health"
