// Warden in one resource group: Function App (Linux, Python 3.11) with a system-assigned managed identity,
// its storage account (triggers, tables, queues), Key Vault (RBAC), Application Insights.
// Deploy:  az deployment group create -g <rg> -f infra/main.bicep -p name=<prefix> apiTenantId=<tenant> apiAudience=<uri,id>
targetScope = 'resourceGroup'

@description('Short prefix for resource names (3-11 lower-case letters and digits).')
@minLength(3)
@maxLength(11)
param name string

param location string = resourceGroup().location

@description('Tenant id of Warden\'s API app registration (the admin API accepts its tokens only).')
param apiTenantId string

@description('The API app\'s App ID URI and/or client id, comma-separated (a token\'s aud must be one of them).')
param apiAudience string

@description('The console\'s sign-in: the client id of Warden\'s API app (empty: the console is not configured).')
param consoleClientId string = ''

@description('The Key Vault secret holding the API app\'s client secret for the console\'s sign-in.')
param consoleSecretName string = 'console-client-secret'

var suffix = uniqueString(resourceGroup().id, name)
var storageName = toLower('${name}${take(suffix, 13)}')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  sku: { name: 'Standard_ZRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    supportsHttpsTrafficOnly: true
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: '${name}-kv-${take(suffix, 6)}'
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    enablePurgeProtection: true
    softDeleteRetentionInDays: 90
  }
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${name}-logs'
  location: location
  properties: { retentionInDays: 30, sku: { name: 'PerGB2018' } }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${name}-ai'
  location: location
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id }
}

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: '${name}-plan'
  location: location
  sku: { name: 'Y1', tier: 'Dynamic' }
  kind: 'functionapp'
  properties: { reserved: true }
}

var storageConnection = 'DefaultEndpointsProtocol=https;AccountName=${storage.name};EndpointSuffix=${environment().suffixes.storage};AccountKey=${storage.listKeys().keys[0].value}'

resource app 'Microsoft.Web/sites@2023-12-01' = {
  name: '${name}-func-${take(suffix, 6)}'
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: 'Python|3.11'
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      appSettings: concat([
        { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
        { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'python' }
        { name: 'AzureWebJobsStorage', value: storageConnection }
        { name: 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING', value: storageConnection }
        { name: 'WEBSITE_CONTENTSHARE', value: toLower('${name}-content') }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'WARDEN_KEY_VAULT_URL', value: vault.properties.vaultUri }
        { name: 'WARDEN_API_TENANT_ID', value: apiTenantId }
        { name: 'WARDEN_API_AUDIENCE', value: apiAudience }
        { name: 'WARDEN_DRIFT_SCHEDULE', value: '0 */10 * * * *' }
        { name: 'WARDEN_RECONCILE_SCHEDULE', value: '0 0 2 * * *' }
        { name: 'WARDEN_DATES_SCHEDULE', value: '0 */5 * * * *' }
        { name: 'WARDEN_TOKEN_REFRESH_SCHEDULE', value: '0 0 * * * *' }
      ], empty(consoleClientId) ? [] : [
        { name: 'WARDEN_CONSOLE_CLIENT_ID', value: consoleClientId }
        { name: 'WARDEN_CONSOLE_SECRET_NAME', value: consoleSecretName }
      ])
    }
  }
}

// Key Vault Secrets Officer: Warden writes the secrets of the directories admins connect.
resource vaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, app.id, 'kv-secrets-officer')
  scope: vault
  properties: {
    principalId: app.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')
  }
}

output functionAppName string = app.name
output keyVaultUrl string = vault.properties.vaultUri
output principalId string = app.identity.principalId
