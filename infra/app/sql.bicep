// Azure SQL with Entra-only authentication (no SQL login or password exists), serverless
// by default, TLS 1.2. Its Entra admin is a dedicated identity that only the deployment
// script below uses, to make the app's identity a database user with the rights the app
// needs (read, write, and DDL for its versioned migrations).
param serverName string
param databaseName string
param skuName string = 'GP_S_Gen5_1'
param location string
param tags object = {}
param adminIdentityName string
param adminIdentityPrincipalId string
param adminIdentityResourceId string
param appIdentityName string
param appIdentityClientId string

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
        sku: {
          name: skuName
          tier: 'GeneralPurpose'
          family: 'Gen5'
          capacity: 1
        }
        autoPauseDelay: 60
        minCapacity: '0.5'
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
