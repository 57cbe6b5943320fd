# Makes a managed identity a user of the database with the rights the app needs.
# Runs as a Bicep deployment script (infra/app/sql.bicep) under the SQL server's Entra
# admin identity; safe to run again. No password anywhere: the script signs in with an
# Entra access token for Azure SQL.
param(
    [Parameter(Mandatory = $true)] [string] $ServerFqdn,
    [Parameter(Mandatory = $true)] [string] $Database,
    [Parameter(Mandatory = $true)] [string] $UserName,
    [Parameter(Mandatory = $true)] [guid] $ClientId
)
$ErrorActionPreference = 'Stop'

if ($UserName -notmatch '^[A-Za-z0-9_-]{1,128}$') { throw "unexpected identity name: $UserName" }

Install-Module -Name SqlServer -MinimumVersion 22.0 -Force -Scope CurrentUser -AllowClobber

$token = (Get-AzAccessToken -ResourceUrl 'https://database.windows.net/').Token
if ($token -is [System.Security.SecureString]) {
    $token = ConvertFrom-SecureString -SecureString $token -AsPlainText
}

# An Entra application's SID is its client id, in uniqueidentifier byte order.
$sid = '0x' + (($ClientId.ToByteArray() | ForEach-Object { $_.ToString('X2') }) -join '')

$query = @"
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$UserName')
    CREATE USER [$UserName] WITH SID = $sid, TYPE = E;
ALTER ROLE db_datareader ADD MEMBER [$UserName];
ALTER ROLE db_datawriter ADD MEMBER [$UserName];
ALTER ROLE db_ddladmin ADD MEMBER [$UserName];
"@

Invoke-Sqlcmd -ServerInstance $ServerFqdn -Database $Database -AccessToken $token `
    -Query $query -EncryptConnection -ErrorAction Stop
$DeploymentScriptOutputs = @{ user = $UserName }
Write-Output "database user $UserName ready in $Database"
