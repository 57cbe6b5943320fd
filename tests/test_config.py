import json
from pathlib import Path

import pytest

from shared.config import ROOT, SETTINGS, ConfigError, Settings


def test_no_settings_at_all_gives_the_local_defaults(clean_env) -> None:
    s = Settings.from_env({})
    assert s.storage_connection == ""  # storage.accounts resolves it (Azurite locally)
    assert s.sql_connection.startswith("sqlite:///")
    assert (s.models_container, s.ingestion_queue) == ("models", "ingestion-jobs")
    assert s.poison_queue == "ingestion-jobs-poison"
    assert s.data_dir == ROOT / ".data"
    assert s.max_vector_dim == 4096 and s.appinsights_connection == ""


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("MAX_VECTOR_DIM", "lots", "expected an integer"),
        ("MAX_VECTOR_DIM", "0", "between 1 and"),
        ("MODELS_CONTAINER", "Models_Here", "not a valid container/queue name"),
        ("INGESTION_QUEUE", "ab", "not a valid container/queue name"),
    ],
)
def test_invalid_values_name_the_setting(key: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as err:
        Settings.from_env({key: value})
    assert err.value.setting == key and key in str(err.value)


def test_values_from_the_environment_win() -> None:
    s = Settings.from_env({"MAX_BATCH_ROWS": "12", "DATA_DIR": "/var/x"})
    assert s.max_batch_rows == 12 and s.data_dir == Path("/var/x")


def test_sample_settings_list_every_setting_with_placeholders_only() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert {s.key for s in SETTINGS} <= set(sample)
    assert sample["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert sample["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert sample["APPLICATIONINSIGHTS_CONNECTION_STRING"] == ""
    # The sample parses: it is a working local configuration.
    Settings.from_env({k: v for k, v in sample.items() if isinstance(v, str)})


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.key}`" in readme, setting.key


def test_binding_names_default_and_never_raise_at_import() -> None:
    from shared.config import binding_name

    assert binding_name("INGESTION_QUEUE", {}) == "ingestion-jobs"
    assert binding_name("INGESTION_QUEUE", {"INGESTION_QUEUE": "jobs-2"}) == "jobs-2"
    assert binding_name("MODELS_CONTAINER", {"MODELS_CONTAINER": "Bad_Name"}) == "models"
