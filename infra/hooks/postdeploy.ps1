# azd postdeploy (Windows): the same two steps as postdeploy.sh.
#  1. Subscribe the blob trigger to BlobCreated events of the models container.
#  2. Apply the SQL migrations inside Azure with the app's own identity.
# Keys are read into variables and never printed.
$ErrorActionPreference = 'Stop'

foreach ($cmd in 'az', 'azd') {
    if (-not (Get-Command $cmd -ErrorAction SilentlyContinue)) { throw "postdeploy: $cmd is not installed" }
}

$values = @{}
foreach ($line in (azd env get-values)) {
    if ($line -match '^([A-Z_][A-Z0-9_]*)="?(.*?)"?$') { $values[$Matches[1]] = $Matches[2] }
}
foreach ($name in 'RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'SERVICE_API_BASE_URL',
                  'EVENT_GRID_SYSTEM_TOPIC_NAME', 'MODELS_CONTAINER', 'BLOB_TRIGGER_FUNCTION') {
    if (-not $values[$name]) { throw "postdeploy: azd environment value $name is missing" }
}

$rg = $values.RESOURCE_GROUP
$app = $values.AZURE_FUNCTION_APP_NAME
$base = $values.SERVICE_API_BASE_URL
$blobsKey = az functionapp keys list -g $rg -n $app --query 'systemKeys.blobs_extension' -o tsv
$masterKey = az functionapp keys list -g $rg -n $app --query 'masterKey' -o tsv
if (-not $blobsKey -or -not $masterKey) { throw "postdeploy: the app has no keys yet; run 'azd deploy' again" }

$webhook = "$base/runtime/webhooks/blobs?functionName=Host.Functions.$($values.BLOB_TRIGGER_FUNCTION)&code=$blobsKey"
Write-Output "Subscribing $($values.BLOB_TRIGGER_FUNCTION) to BlobCreated in container $($values.MODELS_CONTAINER)"
az eventgrid system-topic event-subscription create `
    --name 'models-blob-created' `
    --resource-group $rg `
    --system-topic-name $values.EVENT_GRID_SYSTEM_TOPIC_NAME `
    --endpoint-type webhook `
    --endpoint $webhook `
    --included-event-types Microsoft.Storage.BlobCreated `
    --subject-begins-with "/blobServices/default/containers/$($values.MODELS_CONTAINER)/blobs/" `
    --subject-ends-with '.onnx' `
    --output none
if ($LASTEXITCODE -ne 0) { throw 'postdeploy: creating the Event Grid subscription failed' }

Write-Output 'Applying SQL migrations'
for ($try = 1; ; $try++) {
    try {
        Invoke-RestMethod -Method Post -Uri "$base/api/database/migrate" -Headers @{ 'x-functions-key' = $masterKey }
        break
    } catch {
        if ($try -ge 6) { throw 'postdeploy: migrations failed; see GET /api/ready/details and the app logs' }
        Start-Sleep -Seconds 10
    }
}
Write-Output "Deployed: $base/api/health"
