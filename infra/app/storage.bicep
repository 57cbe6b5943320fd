// The storage account: keyless (shared-key access off: every client, the Functions host
// included, signs in with Entra ID), no public blob access, HTTPS with TLS 1.2 only.
param name string
param location string
param tags object = {}
@description('Blob containers: the deployment package, models, model versions, uploads, ingest.')
param containers array
@description('Queues: the ingestion queue and its poison queue.')
param queues array

module account 'br/public:avm/res/storage/storage-account:0.8.3' = {
  name: 'storage-account'
  params: {
    name: name
    location: location
    tags: tags
    kind: 'StorageV2'
    skuName: 'Standard_LRS'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [for container in containers: { name: container, publicAccess: 'None' }]
    }
    queueServices: {
      queues: [for queue in queues: { name: queue }]
    }
  }
}

output name string = account.outputs.name
output resourceId string = account.outputs.resourceId
output primaryBlobEndpoint string = account.outputs.primaryBlobEndpoint
