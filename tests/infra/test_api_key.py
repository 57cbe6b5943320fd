"""The API key of the OpenAI-compatible routes, as the deployment makes it: a Key Vault
secret whose first value azd makes at random and whose later values it reads back from
the vault, handed to the app as a Key Vault reference the platform resolves with the
app's identity. Read from the parsed Bicep and parameter file (no compiler here)."""

from __future__ import annotations

import json
import random
import re
import string
import uuid

import pytest

from shared.http.api_keys import accepted_keys, require_api_key
from tests.infra.bicep import (
    BICEP_GROUP,
    INFRA,
    Evaluator,
    dotted,
    modules,
    parsed,
    registry_module,
)

pytestmark = pytest.mark.xdist_group(BICEP_GROUP)

MAIN = INFRA / "main.bicep"
FUNCTION = INFRA / "app" / "function.bicep"
PARAMETERS = INFRA / "main.parameters.json"

#: The key vault module's version, and the parameters its main.bicep declares at that
#: version: a name outside them fails the deployment, and no compiler here would say so.
#: Moving to another version means reading its parameters again.
KEY_VAULT_VERSION = "0.13.3"
KEY_VAULT_PARAMS = {
    "name", "location", "accessPolicies", "secrets", "keys", "enableVaultForDeployment",
    "enableVaultForTemplateDeployment", "enableVaultForDiskEncryption", "enableSoftDelete",
    "softDeleteRetentionInDays", "enableRbacAuthorization", "createMode",
    "enablePurgeProtection", "sku", "networkAcls", "publicNetworkAccess", "lock",
    "roleAssignments", "privateEndpoints", "tags", "diagnosticSettings", "enableTelemetry",
}  # fmt: skip
#: The fields of one item of its `secrets` and of its `networkAcls`.
SECRET_FIELDS = {"name", "tags", "attributes", "contentType", "value", "roleAssignments"}
NETWORK_ACL_FIELDS = {"bypass", "defaultAction", "ipRules", "virtualNetworkRules"}

#: RFC 6750's token characters: what `Authorization: Bearer <token>` carries unquoted.
BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _vault() -> dict:
    return registry_module(MAIN, "key-vault/vault")


def _secret() -> dict:
    secrets = _vault()["secrets"]
    assert len(secrets) == 1, secrets
    return secrets[0]


def _secret_name() -> str:
    return Evaluator(MAIN, {}).value(_secret()["name"])


def _key(api_key: str, extension: str) -> str:
    """The secret's value main.bicep computes from its two parameters."""
    params = {"apiKey": api_key, "apiKeyExtension": extension}
    return Evaluator(MAIN, params).value(_secret()["value"])


def _azd_first_password(seed: int) -> str:
    """A password of the shape azd's secretOrRandomPassword makes when the vault has no
    such secret: 5 lowercase letters, 5 uppercase letters and 5 digits, shuffled."""
    rng = random.Random(seed)
    chars = [
        *rng.choices(string.ascii_lowercase, k=5),
        *rng.choices(string.ascii_uppercase, k=5),
        *rng.choices(string.digits, k=5),
    ]
    rng.shuffle(chars)
    return "".join(chars)


def test_the_vault_is_the_pinned_module_with_parameters_it_declares() -> None:
    vault = modules(MAIN)["keyVault"]
    assert vault["detail"]["public"] and vault["detail"]["tag"] == KEY_VAULT_VERSION
    params = _vault()
    assert set(params) <= KEY_VAULT_PARAMS, set(params) - KEY_VAULT_PARAMS
    assert set(_secret()) <= SECRET_FIELDS
    assert set(params["networkAcls"]) <= NETWORK_ACL_FIELDS
    # The module's @allowed lists and its documented range.
    assert params["sku"] in {"premium", "standard"}
    assert params["publicNetworkAccess"] in {"", "Enabled", "Disabled"}
    assert params["networkAcls"]["bypass"] in {"AzureServices", "None"}
    assert params["networkAcls"]["defaultAction"] in {"Allow", "Deny"}
    assert 7 <= params["softDeleteRetentionInDays"] <= 90


def test_the_vault_authorizes_with_rbac_only_and_azd_down_can_purge_it() -> None:
    """RBAC, no access policies; no purge protection, so `azd down --purge` frees the name
    the environment's next `azd up` uses; nothing but the key's readers reach secrets."""
    params = _vault()
    assert params["enableRbacAuthorization"] is True
    assert "accessPolicies" not in params and "roleAssignments" not in params
    assert params["enablePurgeProtection"] is False
    assert params["enableSoftDelete"] is True and params["softDeleteRetentionInDays"] == 7
    for platform_reader in ("Deployment", "TemplateDeployment", "DiskEncryption"):
        assert params[f"enableVaultFor{platform_reader}"] is False, platform_reader
    assert params["sku"] == "standard"  # a secret, no HSM-backed keys
    # The app has no virtual network: its references resolve over the public endpoint.
    assert params["publicNetworkAccess"] == "Enabled"


def test_the_vault_name_fits_key_vault_rules() -> None:
    abbrs = json.loads((INFRA / "abbreviations.json").read_text())
    token = "a" * 13  # uniqueString(): 13 lowercase letters and digits
    name = Evaluator(MAIN, {"abbrs": abbrs, "resourceToken": token}).value(_vault()["name"])
    assert name == f"kv-{token}"
    assert re.fullmatch(r"[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]", name), name


def test_the_secret_is_made_from_the_secure_parameters_only() -> None:
    parameters = parsed(MAIN)["parameters"]
    for name in ("apiKey", "apiKeyExtension"):
        assert {"type": "secure"} in parameters[name]["decorators"], name
    assert parameters["apiKey"]["default"] is None  # azd or the deployer gives it
    assert parameters["apiKeyExtension"]["default"] == {"function": {"type": "new_guid"}}
    assert _secret_name() == "api-key"
    # Any other input to the value would show in what it computes from these two.
    assert _key("A" * 40, "unused") == "A" * 40


def test_a_short_first_key_is_lengthened_and_the_vaults_key_is_kept() -> None:
    """azd's first password is 15 characters; the secret gets 32 more from a GUID. Every
    later run passes the vault's key, which is kept: the app's key does not change."""
    first = _azd_first_password(18)
    extension = str(uuid.UUID(int=random.Random(18).getrandbits(128), version=4))
    key = _key(first, extension)
    assert key == first + extension.replace("-", "") and len(key) == 47
    assert _key(key, str(uuid.uuid4())) == key
    rotation_window = f"{'n' * 40},{key}"  # new key first, old key until clients move
    assert _key(rotation_window, str(uuid.uuid4())) == rotation_window
    minimum = Evaluator(MAIN, {}).name("minimumApiKeyLength")
    assert minimum == 32 and _key("k" * 32, "x") == "k" * 32 and _key("k" * 31, "x") != "k" * 31


@pytest.mark.parametrize("seed", range(20))
def test_the_first_key_is_one_bearer_token_the_app_accepts(seed: int) -> None:
    """Mixed classes, no character a Bearer header or the comma-separated API_KEYS list
    would split or need quoting for, and the app accepts it, alone or beside another."""
    key = _key(_azd_first_password(seed), str(uuid.uuid4()))
    assert len(key) >= 32 and BEARER_TOKEN.fullmatch(key)
    assert all(any(c in cls for c in key) for cls in (string.ascii_lowercase, string.digits))
    assert any(c in string.ascii_uppercase for c in key)
    assert accepted_keys({"API_KEYS": key}) == (key.encode(),)
    require_api_key({"Authorization": f"Bearer {key}"}, accepted_keys({"API_KEYS": key}))
    both = accepted_keys({"API_KEYS": f"{'n' * 40},{key}"})
    require_api_key({"Authorization": f"Bearer {key}"}, both)


#: How azd finds a command in a parameter file once it has put the environment's values
#: in: `$(name args)`, the arguments word characters, spaces and dashes. Anything else
#: is left as written, and the literal text would become the key.
AZD_COMMAND = re.compile(r"\$\(\s*(\w+)([\w\s-]*)\)")


def test_the_parameter_file_asks_azd_for_the_vaults_key_or_a_random_one() -> None:
    value = json.loads(PARAMETERS.read_text())["parameters"]["apiKey"]["value"]
    assert value == "$(secretOrRandomPassword ${AZURE_KEY_VAULT_NAME} api-key)"
    assert "AZURE_KEY_VAULT_NAME" in parsed(MAIN)["outputs"]
    # A later run: the vault azd's environment got from the output, and the secret.
    later = AZD_COMMAND.fullmatch(value.replace("${AZURE_KEY_VAULT_NAME}", "kv-abc123"))
    assert later and later[1] == "secretOrRandomPassword"
    assert later[2].split() == ["kv-abc123", _secret_name()]
    # The first run: no vault yet, one argument, which azd answers with a new password.
    first = AZD_COMMAND.fullmatch(value.replace("${AZURE_KEY_VAULT_NAME}", ""))
    assert first and first[2].split() == [_secret_name()]


def test_the_vault_name_is_an_output_azd_keeps() -> None:
    output = parsed(MAIN)["outputs"]["AZURE_KEY_VAULT_NAME"]
    assert dotted(output["value"]) == "keyVault.outputs.name"


def test_api_keys_is_a_reference_to_that_secret_in_that_vault() -> None:
    """Versionless, so a new version of the secret reaches the app without a deployment."""
    settings = modules(MAIN)["function"]["config"]["params"]["appSettings"]
    reference = re.fullmatch(
        r"@Microsoft\.KeyVault\(VaultName=\$\{(\w+)\.outputs\.name\};SecretName=\$\{(\w+)\}\)",
        settings["API_KEYS"],
    )
    assert reference, settings["API_KEYS"]
    module, secret_variable = reference.groups()
    assert modules(MAIN)[module]["detail"]["path"] == "avm/res/key-vault/vault"
    assert Evaluator(MAIN, {}).name(secret_variable) == _secret_name()


def test_the_site_resolves_references_with_the_app_identity() -> None:
    site = registry_module(FUNCTION, "web/site")
    identities = site["managedIdentities"]
    assert identities["systemAssigned"] is False  # so there is no default identity to use
    assert site["keyVaultAccessIdentityResourceId"] == "identityResourceId"
    assert identities["userAssignedResourceIds"] == ["identityResourceId"]
    function = modules(MAIN)["function"]["config"]["params"]
    assert dotted(function["identityResourceId"]) == "appIdentity.outputs.resourceId"
    # The app's identity has its vault role before the site first resolves the reference.
    assert "rbac" in modules(MAIN)["function"]["config"]["dependsOn"]
