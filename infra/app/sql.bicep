// Azure SQL with Entra-only authentication (no SQL login or password exists), serverless
// by default, TLS 1.2. Its Entra admin is a dedicated identity that only the deployment
// script below uses, to make the app's identity a database user with the rights the app
// needs (read, write, and DDL for its versioned migrations).
param serverName string
param databaseName string
@description('`<edition>_Gen5_<vCores>`: one of the names that sqlSkuName in main.bicep allows.')
param skuName string = 'GP_S_Gen5_1'
param location string
param tags object = {}
param adminIdentityName string
param adminIdentityPrincipalId string
param adminIdentityResourceId string
param appIdentityName string
param appIdentityClientId string

// The database takes its SKU as four fields (edition and hardware as the name, tier,
// family, vCores as capacity: the form Azure reports back, so a redeployment changes
// nothing); all four come from skuName, so they cannot disagree with it.
var skuParts = split(skuName, '_')
var skuVCores = int(last(skuParts))
var skuTiers = {
  GP: 'GeneralPurpose'
  BC: 'BusinessCritical'
}
// GP_S_ names serverless compute: it pauses after an idle hour and, while running, keeps
// a minimum of vCores, here the lowest Azure accepts for its size: an eighth of the
// maximum, 0.5 at the least. Counted in thousandths of a vCore: Bicep has no decimals.
var serverless = skuParts[1] == 'S'
var minMilliVCores = max(500, skuVCores * 125)
var serverlessMinCapacity = '${minMilliVCores / 1000}.${padLeft(string(minMilliVCores % 1000), 3, '0')}'
var sku = {
  name: join(take(skuParts, length(skuParts) - 1), '_')
  tier: skuTiers[first(skuParts)]
  family: skuParts[length(skuParts) - 2]
  capacity: skuVCores
}

module server 'br/public:avm/res/sql/server:0.21.1' = {
  name: 'sql-server'
  params: {
    name: serverName
    location: location
    tags: tags
    minimalTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    administrators: {
      azureADOnlyAuthentication: true
      login: adminIdentityName
      principalType: 'Application'
      sid: adminIdentityPrincipalId
      tenantId: tenant().tenantId
    }
    firewallRules: [
      {
        // 0.0.0.0 - 0.0.0.0 admits Azure services only (the Function App, the script).
        name: 'AllowAllWindowsAzureIps'
        startIpAddress: '0.0.0.0'
        endIpAddress: '0.0.0.0'
      }
    ]
    databases: [
      {
        name: databaseName
        availabilityZone: -1
        zoneRedundant: false
        sku: sku
        // Provisioned compute neither pauses nor has a minimum: the module's defaults.
        autoPauseDelay: serverless ? 60 : -1
        minCapacity: serverless ? serverlessMinCapacity : '0'
        maxSizeBytes: 34359738368
      }
    ]
  }
}

// CREATE USER for the app's identity. `WITH SID = <client id>, TYPE = E` is what
// `FROM EXTERNAL PROVIDER` resolves to, without the server needing Directory Readers.
module appDatabaseUser 'br/public:avm/res/resources/deployment-script:0.5.1' = {
  name: 'sql-app-user'
  params: {
    name: 'sql-app-user-${uniqueString(serverName, databaseName)}'
    location: location
    tags: tags
    kind: 'AzurePowerShell'
    azPowerShellVersion: '12.3'
    managedIdentities: {
      userAssignedResourceIds: [adminIdentityResourceId]
    }
    retentionInterval: 'PT1H'
    cleanupPreference: 'OnSuccess'
    timeout: 'PT15M'
    arguments: '-ServerFqdn ${server.outputs.fullyQualifiedDomainName} -Database ${databaseName} -UserName ${appIdentityName} -ClientId ${appIdentityClientId}'
    scriptContent: loadTextContent('../sql/create-app-user.ps1')
  }
}

output serverFqdn string = server.outputs.fullyQualifiedDomainName
output serverName string = server.outputs.name
