// Hartonomous Functions on Azure: `azd up` provisions this, then deploys the app.
// Flex Consumption Function App, keyless Storage (shared keys off), Azure SQL with
// Entra-only authentication, Application Insights without local auth, and the Event
// Grid system topic the model blob trigger listens through. Every credential the app
// uses is its user-assigned managed identity: no key, password or connection secret
// here. The one secret, the API key callers of the OpenAI-compatible routes send, is
// made at random on the first `azd up` and lives in Key Vault, which the app reads
// through that identity (docs/deploy.md#the-api-key).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the unique names of every resource.')
param environmentName string

@minLength(1)
@description('Primary location for all resources.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the person or pipeline running azd (azd fills AZURE_PRINCIPAL_ID); gets data access to storage for debugging. Empty: none.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal'])
@description('What principalId is.')
param principalType string = 'User'

@allowed([512, 2048, 4096])
@description('Memory of each Flex Consumption instance (MB); the app sizes its caches from it.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Most instances the app scales out to.')
param maximumInstanceCount int = 40

// Flex Consumption gives a Python app one HTTP request per instance unless this is set:
// 40 instances would then serve 40 calls at once, each instance paying its own cold
// start. 16 at once lets one instance's dynamic batcher run concurrent searches as one
// batch (docs/search.md#many-callers-at-once has the figures); past its batch queue a
// call gets 429.
@minValue(1)
@maxValue(1000)
@description('HTTP requests one instance serves at once; the worker gets as many threads.')
param httpPerInstanceConcurrency int = 16

@description('Share of traces kept (microsoft.fixed_percentage sampler): 1.0 keeps all.')
param tracesSamplingRatio string = '1.0'

// Listed rather than free text, so that a name sql.bicep cannot turn into a SKU stops
// the deployment before anything is created: the vCore counts Azure offers for each
// edition on standard-series (Gen5) hardware.
@allowed([
  'GP_S_Gen5_1', 'GP_S_Gen5_2', 'GP_S_Gen5_4', 'GP_S_Gen5_6', 'GP_S_Gen5_8'
  'GP_S_Gen5_10', 'GP_S_Gen5_12', 'GP_S_Gen5_14', 'GP_S_Gen5_16', 'GP_S_Gen5_18'
  'GP_S_Gen5_20', 'GP_S_Gen5_24', 'GP_S_Gen5_32', 'GP_S_Gen5_40', 'GP_S_Gen5_80'
  'GP_Gen5_2', 'GP_Gen5_4', 'GP_Gen5_6', 'GP_Gen5_8', 'GP_Gen5_10', 'GP_Gen5_12', 'GP_Gen5_14'
  'GP_Gen5_16', 'GP_Gen5_18', 'GP_Gen5_20', 'GP_Gen5_24', 'GP_Gen5_32', 'GP_Gen5_40', 'GP_Gen5_80'
  'BC_Gen5_2', 'BC_Gen5_4', 'BC_Gen5_6', 'BC_Gen5_8', 'BC_Gen5_10', 'BC_Gen5_12', 'BC_Gen5_14'
  'BC_Gen5_16', 'BC_Gen5_18', 'BC_Gen5_20', 'BC_Gen5_24', 'BC_Gen5_32', 'BC_Gen5_40', 'BC_Gen5_80'
])
@description('Azure SQL database SKU, `<edition>_Gen5_<vCores>`: GP_S (General Purpose serverless, pauses when idle; the default), GP (General Purpose) or BC (Business Critical).')
param sqlSkuName string = 'GP_S_Gen5_1'

// The key callers of /api/v1/... send as `Authorization: Bearer <key>`. azd fills it
// (main.parameters.json, secretOrRandomPassword) with the vault's `api-key` secret, or,
// while the vault or the secret does not exist yet, with a new random password: so each
// later run keeps the key the vault holds, a rotated one included.
@secure()
@description('The API key of the OpenAI-compatible routes: the vault\'s api-key secret (azd: secretOrRandomPassword).')
param apiKey string

// azd's random password is 15 letters and digits. A key shorter than
// `minimumApiKeyLength` gets the 32 hex digits of this GUID appended (47 characters on
// the first run); a longer one, as every later run reads from the vault, is kept as is.
@secure()
@description('Random characters appended to an apiKey shorter than 32 characters; unused otherwise.')
// checkov:skip=CKV_AZURE_131: newGuid() is a new random value at each deployment, not a value written here
param apiKeyExtension string = newGuid()

param resourceGroupName string = ''

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var sqlDatabaseName = 'hartonomous'
var apiKeySecretName = 'api-key'
var minimumApiKeyLength = 32

// The names the app reads (shared/settings.py); one place, used by storage and settings.
var containers = {
  models: 'models'
  modelVersions: 'model-versions'
  modelUploads: 'model-uploads'
  ingest: 'ingest'
  searchSnapshots: 'search-snapshots'
}
var ingestionQueue = 'ingestion-jobs'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module appIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'appIdentity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}app-${resourceToken}'
    location: location
    tags: tags
  }
}

// Entra admin of the SQL server; only the deployment script that creates the app's
// database user runs as it.
module sqlAdminIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'sqlAdminIdentity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}sqladmin-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    containers: [
      deploymentContainerName
      containers.models
      containers.modelVersions
      containers.modelUploads
      containers.ingest
      containers.searchSnapshots
    ]
    queues: [
      ingestionQueue
      '${ingestionQueue}-poison'
    ]
  }
}

// The API key's vault: Azure RBAC only (no access policies). Its public endpoint stays
// open: the platform resolves the app's reference through it (the app has no virtual
// network) and azd reads the secret from the deploying machine; every read needs an
// Entra token holding a Key Vault data role (infra/app/rbac.bicep). Purge protection is
// off: the vault's name comes from the environment's, so with it `azd down` could not
// purge the vault and the environment's next `azd up` would fail on the name until the
// retention ends; the key can be made again, unlike data. Soft delete keeps a deleted
// vault recoverable for 7 days.
module keyVault 'br/public:avm/res/key-vault/vault:0.13.3' = {
  name: 'keyVault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    sku: 'standard'
    enableRbacAuthorization: true
    enablePurgeProtection: false
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enableVaultForDeployment: false
    enableVaultForTemplateDeployment: false
    enableVaultForDiskEncryption: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    secrets: [
      {
        name: apiKeySecretName
        value: (length(apiKey) >= minimumApiKeyLength) ? apiKey : '${apiKey}${replace(apiKeyExtension, '-', '')}'
        contentType: 'text/plain'
      }
    ]
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.11.1' = {
  name: 'logAnalytics'
  scope: rg
  params: {
    name: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30
  }
}

module appInsights 'br/public:avm/res/insights/component:0.6.0' = {
  name: 'appInsights'
  scope: rg
  params: {
    name: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true
  }
}

module appServicePlan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'appServicePlan'
  scope: rg
  params: {
    name: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
  }
}

module sql 'app/sql.bicep' = {
  name: 'sql'
  scope: rg
  params: {
    serverName: '${abbrs.sqlServers}${resourceToken}'
    databaseName: sqlDatabaseName
    skuName: sqlSkuName
    location: location
    tags: tags
    adminIdentityName: sqlAdminIdentity.outputs.name
    adminIdentityPrincipalId: sqlAdminIdentity.outputs.principalId
    adminIdentityResourceId: sqlAdminIdentity.outputs.resourceId
    appIdentityName: appIdentity.outputs.name
    appIdentityClientId: appIdentity.outputs.clientId
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: appInsights.outputs.name
    keyVaultName: keyVault.outputs.name
    appPrincipalId: appIdentity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module function 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    serviceName: 'api'
    appServicePlanId: appServicePlan.outputs.resourceId
    identityResourceId: appIdentity.outputs.resourceId
    identityClientId: appIdentity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: appInsights.outputs.name
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    httpPerInstanceConcurrency: httpPerInstanceConcurrency
    appSettings: {
      SQL_CONNECTION_STRING: 'Driver={ODBC Driver 18 for SQL Server};Server=tcp:${sql.outputs.serverFqdn},1433;Database=${sqlDatabaseName};Encrypt=yes;TrustServerCertificate=no;Connection Timeout=30;Authentication=ActiveDirectoryMsi;UID=${appIdentity.outputs.clientId}'
      MODELS_CONTAINER: containers.models
      MODEL_VERSIONS_CONTAINER: containers.modelVersions
      MODEL_UPLOADS_CONTAINER: containers.modelUploads
      INGEST_CONTAINER: containers.ingest
      INGESTION_QUEUE: ingestionQueue
      INSTANCE_MEMORY_MB: string(instanceMemoryMB)
      PYTHON_THREADPOOL_THREAD_COUNT: string(httpPerInstanceConcurrency)
      PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
      OTEL_TRACES_SAMPLER: 'microsoft.fixed_percentage'
      OTEL_TRACES_SAMPLER_ARG: tracesSamplingRatio
      // Resolved by the platform with the app's identity (function.bicep sets it as the
      // site's Key Vault reference identity); versionless, so a new version of the
      // secret reaches the app when the platform refreshes its references.
      API_KEYS: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=${apiKeySecretName})'
    }
  }
  dependsOn: [rbac]
}

// Blob events of the storage account; infra/hooks/postdeploy subscribes the blob
// trigger's webhook once the app runs (its key exists only then).
module eventGridTopic 'br/public:avm/res/event-grid/system-topic:0.6.1' = {
  name: 'eventGridTopic'
  scope: rg
  params: {
    name: '${abbrs.eventGridDomainsTopics}blobs-${resourceToken}'
    location: location
    tags: tags
    source: storage.outputs.resourceId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output SERVICE_API_BASE_URL string = function.outputs.baseUrl
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output MODELS_CONTAINER string = containers.models
output EVENT_GRID_SYSTEM_TOPIC_NAME string = eventGridTopic.outputs.name
output BLOB_TRIGGER_FUNCTION string = 'register_model_blob'
output SQL_SERVER_FQDN string = sql.outputs.serverFqdn
output SQL_DATABASE_NAME string = sqlDatabaseName
// main.parameters.json reads the API key back from this vault on the next run.
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
