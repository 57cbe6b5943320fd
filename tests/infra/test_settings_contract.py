"""The settings contract between the deployment and the code: every app setting the
Bicep sets is one that the app, the Functions host or the Python worker reads, and with
exactly those settings (in Azure mode) the app resolves storage, SQL and its names with
no key or password. local.settings.sample.json is held to the same list."""

from __future__ import annotations

import json
import re

import pytest

from shared.db.entra import resolve_sql_auth
from shared.settings import ROOT, SETTINGS, Settings
from shared.storage.accounts import DEFAULT_PREFIX, resolve_account
from tests.infra.bicep import BICEP_GROUP, INFRA, dotted, parsed

pytestmark = pytest.mark.xdist_group(BICEP_GROUP)

IDENTITY_SUFFIXES = ("accountName", "blobServiceUri", "queueServiceUri", "credential", "clientId")
APP_READS = (
    {s.key for s in SETTINGS}
    | {DEFAULT_PREFIX}  # shared/storage/accounts.py, as the host reads it
    | {f"{DEFAULT_PREFIX}__{suffix}" for suffix in IDENTITY_SUFFIXES}
    | {"SQL_CREDENTIAL", "SQL_CLIENT_ID", "INSTANCE_MEMORY_MB"}
)
# Read by the platform, not by app code: the Python worker configures Azure Monitor
# (docs: DESIGN.md "Telemetry"), and the SDK reads its own variables.
PLATFORM_READS = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "PYTHON_THREADPOOL_THREAD_COUNT",  # the worker's threads; the local host reads it too
}
# Read by the Functions host alone, not by the app's clients: it keeps its diagnostic
# events in Table storage (the app's identity has Storage Table Data Contributor).
HOST_READS = {f"{DEFAULT_PREFIX}__tableServiceUri"}
# Only the local host or Core Tools read these (never set in Azure).
LOCAL_ONLY = {
    "FUNCTIONS_WORKER_RUNTIME",
    "AzureWebJobsFeatureFlags",
    "LOCAL_FUNCTION_KEYS",
    "LOCAL_MASTER_KEY",
}


def bicep_app_settings() -> dict[str, object]:
    """The Function App's settings: main.bicep's `appSettings` and function.bicep's own."""
    main = parsed(INFRA / "main.bicep")["modules"]["function"]["config"]["params"]["appSettings"]
    own = parsed(INFRA / "app" / "function.bicep")["variables"]["identitySettings"]["value"]
    assert not set(main) & set(own), "a setting is set twice"
    return {**main, **own}


def _main_variable(value: object) -> object:
    """`containers.models` or `ingestionQueue`: what main.bicep's variables say."""
    variables = parsed(INFRA / "main.bicep")["variables"]
    path = dotted(value)
    if not isinstance(path, str):
        return value
    head, *rest = path.split(".")
    if head not in variables:
        return value
    found = variables[head]["value"]
    for part in rest:
        found = found[part]
    return found


def azure_environment() -> dict[str, str]:
    """The settings as Azure would hold them: literal values and main.bicep's variables
    as written; each other expression gets a value of the shape it resolves to (an https
    endpoint, a client id GUID)."""
    env = {"WEBSITE_INSTANCE_ID": "instance-0"}
    for key, value in bicep_app_settings().items():
        value = _main_variable(value)
        text = value if isinstance(value, str) else f"<{key}>"
        text = re.sub(r"\$\{[^}]*clientId[^}]*\}", "6f1c2a3b-0d4e-4f5a-9b8c-7d6e5f4a3b2c", text)
        text = re.sub(r"\$\{[^}]*\}", "example", text)
        env[key] = text
    env["AzureWebJobsStorage__blobServiceUri"] = "https://stexample.blob.core.windows.net/"
    env["AzureWebJobsStorage__queueServiceUri"] = "https://stexample.queue.core.windows.net/"
    env["AzureWebJobsStorage__clientId"] = "6f1c2a3b-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
    env["INSTANCE_MEMORY_MB"] = "2048"
    return env


def test_every_setting_the_bicep_sets_is_read_by_the_app_or_the_platform() -> None:
    unknown = set(bicep_app_settings()) - APP_READS - PLATFORM_READS - HOST_READS
    assert not unknown, f"set in Bicep, read by nobody: {sorted(unknown)}"


def test_the_host_gets_every_storage_endpoint_it_reads_with_an_identity() -> None:
    """Identity-based AzureWebJobsStorage names each service's endpoint: blob and queue
    (the host's triggers and the app), table (the host's diagnostic events)."""
    settings = bicep_app_settings()
    for service in ("blob", "queue", "table"):
        assert f"{DEFAULT_PREFIX}__{service}ServiceUri" in settings, service


def test_the_names_said_to_be_read_are_read_by_the_code() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "shared").rglob("*.py"))
    for key in APP_READS - {f"{DEFAULT_PREFIX}__{s}" for s in IDENTITY_SUFFIXES}:
        assert f'"{key}"' in code, key
    for suffix in IDENTITY_SUFFIXES:
        assert f"__{suffix}" in code, suffix


def test_with_the_bicep_settings_the_app_runs_keyless_in_azure() -> None:
    env = azure_environment()
    settings = Settings.from_env(env)
    assert settings.azure
    for setting in SETTINGS:  # every required setting is set; the others default right
        if setting.default_for(env) is None:
            assert setting.key in env, f"{setting.key} is required in Azure and not set"
    assert "Authentication=ActiveDirectoryMsi" in settings.require("sql_connection")
    assert resolve_sql_auth(settings.require("sql_connection"), env).uses_token is False
    account = resolve_account(DEFAULT_PREFIX, env)
    assert account.keyless and account.credential == "managedidentity"
    assert account.client_id == "6f1c2a3b-0d4e-4f5a-9b8c-7d6e5f4a3b2c"
    assert settings.data_dir.as_posix().startswith("/tmp/")
    assert settings.models_container == "models" and settings.ingestion_queue == "ingestion-jobs"


def test_the_sample_settings_name_only_what_something_reads() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    unknown = set(sample) - APP_READS - PLATFORM_READS - LOCAL_ONLY
    assert not unknown, sorted(unknown)
    assert {s.key for s in SETTINGS} <= set(sample)
