"""The deployment's security settings, read from the parsed Bicep. Checkov cannot look
inside registry modules, so what each Azure Verified Module is given is asserted here."""

from __future__ import annotations

import json
import re

import pytest

from tests.infra.bicep import (
    BICEP_GROUP,
    INFRA,
    Evaluator,
    allowed_values,
    bicep_files,
    dotted,
    modules,
    parsed,
    registry_module,
    role_assignments,
)

pytestmark = pytest.mark.xdist_group(BICEP_GROUP)

MAIN = INFRA / "main.bicep"
STORAGE = INFRA / "app" / "storage.bicep"
FUNCTION = INFRA / "app" / "function.bicep"
SQL = INFRA / "app" / "sql.bicep"
RBAC = INFRA / "app" / "rbac.bicep"


#: Bicep's top-level declarations and the section of pycep's result each lands in.
SECTIONS = {
    "param": "parameters",
    "var": "variables",
    "resource": "resources",
    "module": "modules",
    "output": "outputs",
}


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path) -> None:
    """The parse holds every declaration the file makes, and nothing else: a parser that
    stopped early or misread one would leave a name out (and the tests below, which read
    the parse, would miss what they check)."""
    text = path.read_text()
    keywords = "|".join(SECTIONS)
    declared = {
        (SECTIONS[kind], name) for kind, name in re.findall(rf"(?m)^({keywords})\s+(\w+)", text)
    }
    tree = parsed(path)
    found = {(section, name) for section in SECTIONS.values() for name in tree.get(section, {})}
    assert declared, f"{path.name} declares nothing"
    assert found == declared


def test_registry_modules_are_public_avm_and_pinned() -> None:
    seen = 0
    for path in bicep_files():
        for name, module in modules(path).items():
            if module["type"] == "local":
                continue
            detail = module["detail"]
            assert detail["public"] and detail["path"].startswith("avm/res/"), (path, name)
            assert re.fullmatch(r"\d+\.\d+\.\d+", detail["tag"]), (path, name, detail["tag"])
            seen += 1
    assert seen >= 10


def test_storage_is_keyless_private_and_tls12() -> None:
    params = registry_module(STORAGE, "storage/storage-account")
    assert params["allowSharedKeyAccess"] is False
    assert params["allowBlobPublicAccess"] is False
    assert params["supportsHttpsTrafficOnly"] is True
    assert params["minimumTlsVersion"] == "TLS1_2"
    assert params["blobServices"]["containers"]["config"]["publicAccess"] == "None"


def test_storage_holds_every_container_and_queue_the_app_reads() -> None:
    from shared.settings import Settings

    defaults = Settings.from_env({"WEBSITE_INSTANCE_ID": "x", "INSTANCE_MEMORY_MB": "2048"})
    text = MAIN.read_text()
    for name in (
        defaults.models_container,
        defaults.model_versions_container,
        defaults.upload_staging_container,
        defaults.ingest_container,
        defaults.search_snapshots_container,
        defaults.ingestion_queue,
    ):
        assert f"'{name}'" in text, name
    assert "'${ingestionQueue}-poison'" in text


def test_application_insights_has_no_local_auth() -> None:
    params = registry_module(MAIN, "insights/component")
    assert params["disableLocalAuth"] is True


def test_function_app_is_flex_consumption_https_only_no_ftp_with_its_identity() -> None:
    plan = registry_module(MAIN, "web/serverfarm")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"} and plan["reserved"] is True
    site = registry_module(FUNCTION, "web/site")
    assert site["httpsOnly"] is True and site["kind"] == "functionapp,linux"
    assert site["siteConfig"]["ftpsState"] == "Disabled"
    assert site["siteConfig"]["minTlsVersion"] == "1.2"
    policies = site["basicPublishingCredentialsPolicies"]
    assert {p["name"]: p["allow"] for p in policies} == {"ftp": False, "scm": False}
    assert site["managedIdentities"]["userAssignedResourceIds"] == ["identityResourceId"]
    config = site["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    scale = config["scaleAndConcurrency"]
    assert set(scale) == {"instanceMemoryMB", "maximumInstanceCount", "triggers"}
    # Without it Flex runs a Python app one HTTP request per instance.
    assert scale["triggers"] == {"http": {"perInstanceConcurrency": "httpPerInstanceConcurrency"}}


def test_the_worker_has_a_thread_per_concurrent_request() -> None:
    """One parameter sets both what the platform sends an instance at once and the
    Python worker's threads, so no request waits for a thread the platform counted."""
    main = parsed(MAIN)
    params = main["modules"]["function"]["config"]["params"]
    assert params["httpPerInstanceConcurrency"] == "httpPerInstanceConcurrency"
    assert params["appSettings"]["PYTHON_THREADPOOL_THREAD_COUNT"] == {
        "function": {
            "type": "string",
            "parameters": {"value_to_convert": "httpPerInstanceConcurrency"},
        }
    }
    assert main["parameters"]["httpPerInstanceConcurrency"]["default"] == 16


def test_sql_is_entra_only_with_no_password() -> None:
    params = registry_module(SQL, "sql/server")
    admins = params["administrators"]
    assert admins["azureADOnlyAuthentication"] is True
    assert params["minimalTlsVersion"] == "1.2"
    assert not any("password" in key.lower() for key in params)
    assert "administratorLogin" not in params


BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"  # Storage Blob Data Owner
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"  # Storage Queue Data Contributor
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"  # Storage Table Data Contributor
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"  # Monitoring Metrics Publisher
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"  # reads secrets
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"  # reads and writes secrets


def test_the_app_identity_gets_exactly_its_roles() -> None:
    """Each role on the one resource it is for, and no other: the app reads the API key's
    secret and nothing else of the vault; the deploying user reads and writes secrets
    (azd reads the key back on each run; rotating it writes a new version)."""
    assigned = role_assignments(RBAC)
    app = {(scope, role) for who, scope, role in assigned if who == "appPrincipalId"}
    assert app == {
        ("storageAccount", BLOB_DATA_OWNER),
        ("storageAccount", QUEUE_DATA_CONTRIBUTOR),
        ("storageAccount", TABLE_DATA_CONTRIBUTOR),
        ("appInsights", METRICS_PUBLISHER),
        ("keyVault", KEY_VAULT_SECRETS_USER),
    }
    user = {(scope, role) for who, scope, role in assigned if who == "userPrincipalId"}
    assert user == {
        ("storageAccount", BLOB_DATA_OWNER),
        ("storageAccount", QUEUE_DATA_CONTRIBUTOR),
        ("storageAccount", TABLE_DATA_CONTRIBUTOR),
        ("keyVault", KEY_VAULT_SECRETS_OFFICER),
    }
    assert {who for who, _, _ in assigned} == {"appPrincipalId", "userPrincipalId"}
    resources = parsed(RBAC)["resources"]
    assert resources["keyVault"]["existing"] is True
    assert resources["keyVault"]["config"]["name"] == "keyVaultName"
    rbac = modules(MAIN)["rbac"]["config"]["params"]
    assert dotted(rbac["keyVaultName"]) == "keyVault.outputs.name"
    assert dotted(rbac["appPrincipalId"]) == "appIdentity.outputs.principalId"


def test_the_host_reaches_table_storage_with_the_app_identity() -> None:
    """The Functions host keeps its diagnostic events in Table storage: identity-based, it
    needs the account's table endpoint and a table data role for the app's identity."""
    settings = parsed(FUNCTION)["variables"]["identitySettings"]["value"]
    for service in ("blob", "queue", "table"):
        endpoint = settings[f"AzureWebJobsStorage__{service}ServiceUri"]
        assert dotted(endpoint) == f"stg.properties.primaryEndpoints.{service}", service
    assert parsed(FUNCTION)["resources"]["stg"]["existing"] is True  # the app's account
    rbac = parsed(RBAC)
    assert TABLE_DATA_CONTRIBUTOR in Evaluator(RBAC, {}).name("storageRoles")
    app_roles = rbac["resources"]["appStorageRoles"]["config"]
    assert app_roles["loop_type"]["detail"]["array_name"] == "storageRoles"
    assert app_roles["config"]["scope"] == "storageAccount"
    assert app_roles["config"]["properties"]["principalId"] == "appPrincipalId"


def test_no_secret_appears_in_any_bicep_or_parameter_file() -> None:
    pattern = re.compile(r"(?i)(accountkey|password\s*[:=]\s*'[^']|pwd=|sharedaccesskey|sig=)")
    for path in [*bicep_files(), INFRA / "main.parameters.json"]:
        assert not pattern.search(path.read_text()), path


def test_event_grid_topic_watches_the_storage_account() -> None:
    params = registry_module(MAIN, "event-grid/system-topic")
    assert params["topicType"] == "Microsoft.Storage.StorageAccounts"
    assert dotted(params["source"]) == "storage.outputs.resourceId"


SQL_SKU = re.compile(r"(?P<edition>GP_S|GP|BC)_(?P<family>Gen5)_(?P<vcores>\d+)")
TIERS = {"GP_S": "GeneralPurpose", "GP": "GeneralPurpose", "BC": "BusinessCritical"}
#: Serverless General Purpose: the lowest minimum vCores Azure takes for each maximum
#: (its single-database vCore resource limits).
SERVERLESS_MIN_VCORES = {
    **{n: 0.5 for n in (1, 2, 4)},
    **{6: 0.75, 8: 1.0, 10: 1.25, 12: 1.5, 14: 1.75, 16: 2.0, 18: 2.25, 20: 2.5},
    **{24: 3.0, 32: 4.0, 40: 5.0, 80: 10.0},
}


def _sql_database(sku_name: str) -> dict[str, object]:
    database = registry_module(SQL, "sql/server")["databases"][0]
    evaluate = Evaluator(SQL, {"skuName": sku_name}).value
    return {key: evaluate(database[key]) for key in ("sku", "autoPauseDelay", "minCapacity")}


def test_the_sql_sku_follows_its_name() -> None:
    """tier, family and capacity come from sqlSkuName, so a bigger or provisioned SKU is
    deployed as named, not as a one-vCore serverless database of that name."""
    assert _sql_database("GP_S_Gen5_2") == {
        "sku": {"name": "GP_S_Gen5", "tier": "GeneralPurpose", "family": "Gen5", "capacity": 2},
        "autoPauseDelay": 60,
        "minCapacity": "0.500",
    }
    assert _sql_database("BC_Gen5_4") == {
        "sku": {"name": "BC_Gen5", "tier": "BusinessCritical", "family": "Gen5", "capacity": 4},
        "autoPauseDelay": -1,
        "minCapacity": "0",
    }
    allowed = allowed_values(MAIN, "sqlSkuName")
    assert len(allowed) == len(set(allowed)) > 0
    for name in allowed:
        parts = SQL_SKU.fullmatch(name)
        assert parts, f"{name}: sql.bicep cannot read this form"
        vcores = int(parts["vcores"])
        database = _sql_database(name)
        assert database["sku"] == {
            "name": f"{parts['edition']}_{parts['family']}",
            "tier": TIERS[parts["edition"]],
            "family": parts["family"],
            "capacity": vcores,
        }, name
        if parts["edition"] == "GP_S":
            assert database["autoPauseDelay"] == 60, name
            assert float(database["minCapacity"]) == SERVERLESS_MIN_VCORES[vcores], name
        else:
            assert (database["autoPauseDelay"], database["minCapacity"]) == (-1, "0"), name


def test_a_sql_sku_the_template_cannot_build_is_refused_before_deploying() -> None:
    """sqlSkuName takes only the listed names (ARM checks @allowed before it creates
    anything), and the list holds the default and reaches sql.bicep."""
    allowed = allowed_values(MAIN, "sqlSkuName")
    default = parsed(MAIN)["parameters"]["sqlSkuName"]["default"]
    assert default == "GP_S_Gen5_1" and default in allowed
    for unsupported in ("S0", "Basic", "HS_Gen5_4", "GP_S_Gen5_3", "GP_Gen5_1", "GP_S_Gen5"):
        assert unsupported not in allowed, unsupported
    assert modules(MAIN)["sql"]["config"]["params"]["skuName"] == "sqlSkuName"
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["sqlSkuName"]["value"] == f"${{SQL_SKU_NAME={default}}}"
