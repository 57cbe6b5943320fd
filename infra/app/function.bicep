// The Function App on Flex Consumption: Linux, Python 3.11, the deployment package in a
// blob container reached with the app's identity, HTTPS only, FTP off. Its settings are
// the identity-based names the app and the Functions host read: no key or password; the
// API key is a Key Vault reference the platform resolves with the same identity.
param name string
param location string
param tags object = {}
param serviceName string
param appServicePlanId string
param identityResourceId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 40
@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int = 16
@description('The app\'s own settings (SQL, container and queue names, telemetry switches).')
param appSettings object

resource stg 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// AzureWebJobsStorage as identity: the host's triggers and the app's own clients
// (shared/storage/accounts.py) read the blob and queue endpoints, credential and client
// id; the table endpoint is the host's alone, where it keeps its diagnostic events.
var identitySettings = {
  AzureWebJobsStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: stg.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

module site 'br/public:avm/res/web/site:0.15.1' = {
  name: 'function-app'
  params: {
    kind: 'functionapp,linux'
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': serviceName })
    serverFarmResourceId: appServicePlanId
    httpsOnly: true
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [identityResourceId]
    }
    // The identity the platform resolves Key Vault references in the settings with (the
    // API key): without it the platform would use a system-assigned identity, and there
    // is none.
    keyVaultAccessIdentityResourceId: identityResourceId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityResourceId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      alwaysOn: false
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    basicPublishingCredentialsPolicies: [
      { name: 'ftp', allow: false }
      { name: 'scm', allow: false }
    ]
    appSettingsKeyValuePairs: union(appSettings, identitySettings)
  }
}

output name string = site.outputs.name
output baseUrl string = 'https://${site.outputs.defaultHostname}'
