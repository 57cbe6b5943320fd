# azd postdeploy (Windows): the same two steps as postdeploy.sh.
#  1. Subscribe the blob trigger to BlobCreated events of the models container.
#  2. Apply the SQL migrations inside Azure with the app's own identity.
# Keys are read into variables and never printed, nor put on any command line.
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
# The blobs_extension system key exists only once the host has started and set up the
# blob trigger's Event Grid extension, a little after the deployment: ask again until it
# appears, for at most 30 tries 10 s apart (postdeploy.sh waits the same).
for ($try = 1; ; $try++) {
    $blobsKey = az functionapp keys list -g $rg -n $app --query 'systemKeys.blobs_extension' -o tsv
    if ($LASTEXITCODE -eq 0 -and $blobsKey) { break }
    if ($try -ge 30) {
        throw "postdeploy: the app has no blobs_extension key after 30 tries in 5 minutes: its host has not started the blob trigger; see the app's logs, then run 'azd deploy' again"
    }
    Start-Sleep -Seconds 10
}
$masterKey = az functionapp keys list -g $rg -n $app --query 'masterKey' -o tsv
if (-not $masterKey) { throw "postdeploy: the app has no master key yet; run 'azd deploy' again" }

$webhook = "$base/runtime/webhooks/blobs?functionName=Host.Functions.$($values.BLOB_TRIGGER_FUNCTION)&code=$blobsKey"
Write-Output "Subscribing $($values.BLOB_TRIGGER_FUNCTION) to BlobCreated in container $($values.MODELS_CONTAINER)"
# The webhook URL carries its key after an `&`. `az` here is az.cmd, a batch file, so
# cmd.exe parses its command line again, and PowerShell quotes an argument only when it
# holds a space: a bare `&` would end the az command there and run `code=<key>` as a
# command of its own. How PowerShell passes quotes written into an argument depends on
# its version and $PSNativeCommandArgumentPassing, so no quoting is relied on: the URL
# goes on no command line at all. az reads it from a file (its `@<file>` form, which any
# argument accepts), named by a relative path in a folder of this hook's own (PowerShell
# starts az in the current location), so that the argument holds nothing cmd.exe reads
# specially whatever the user's temp path is. The key stays out of process listings too.
$workDir = Join-Path ([IO.Path]::GetTempPath()) "postdeploy-$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory -Path $workDir | Out-Null
try {
    [IO.File]::WriteAllText((Join-Path $workDir 'endpoint.txt'), $webhook)
    Push-Location -LiteralPath $workDir
    try {
        az eventgrid system-topic event-subscription create `
            --name 'models-blob-created' `
            --resource-group $rg `
            --system-topic-name $values.EVENT_GRID_SYSTEM_TOPIC_NAME `
            --endpoint-type webhook `
            --endpoint '@endpoint.txt' `
            --included-event-types Microsoft.Storage.BlobCreated `
            --subject-begins-with "/blobServices/default/containers/$($values.MODELS_CONTAINER)/blobs/" `
            --subject-ends-with '.onnx' `
            --output none
        $subscribed = $LASTEXITCODE -eq 0
    } finally {
        Pop-Location
    }
} finally {
    Remove-Item -LiteralPath $workDir -Recurse -Force
}
if (-not $subscribed) { throw 'postdeploy: creating the Event Grid subscription failed' }

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
