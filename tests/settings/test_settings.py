import json
import os
from pathlib import Path

import pytest

from shared.settings import ROOT, SETTINGS, ConfigError, Settings


def test_no_settings_at_all_gives_the_local_defaults(clean_env) -> None:
    s = Settings.from_env({})
    assert not s.azure
    assert s.sql_connection == "sqlite:///.data/hartonomous.db"
    assert (s.models_container, s.ingestion_queue) == ("models", "ingestion-jobs")
    assert s.upload_staging_container == "model-uploads"
    assert s.poison_queue == "ingestion-jobs-poison"
    assert s.data_dir == ROOT / ".data"
    assert s.max_vector_dim == 4096
    blank = Settings.from_env({"MAX_VECTOR_DIM": " ", "DATA_DIR": "", "SQL_CONNECTION_STRING": ""})
    assert blank == s  # a blank value is an unset one


def test_each_value_lands_on_the_attribute_its_key_names() -> None:
    """Distinct values for every setting: none can end up on another's attribute."""
    ints = [s for s in SETTINGS if isinstance(s.default_for({}), int)]
    names = [
        s
        for s in SETTINGS
        if isinstance(s.default_for({}), str) and s.key.endswith(("_CONTAINER", "_QUEUE"))
    ]
    env = {s.key: str(s.default_for({}) + 1 + i) for i, s in enumerate(ints)}  # in bounds
    env |= {s.key: f"name-{i}" for i, s in enumerate(names)}
    got = Settings.from_env(env)
    assert len(ints) >= 10 and len(names) == 6 and len(set(env.values())) == len(env)
    for setting in ints:
        assert getattr(got, setting.attribute) == int(env[setting.key]), setting.key
    for setting in names:
        assert getattr(got, setting.attribute) == env[setting.key], setting.key


def test_the_process_environment_is_read_only_when_no_mapping_is_given(monkeypatch) -> None:
    monkeypatch.setenv("MAX_SESSIONS", "9")
    monkeypatch.setenv("INGEST_CONTAINER", " batch-files ")
    assert Settings.from_env({}).max_sessions == 4  # a given mapping is the only input
    from_process = Settings.from_env()
    assert from_process.max_sessions == 9 and from_process.ingest_container == "batch-files"
    assert from_process == Settings.from_env(dict(os.environ))
    monkeypatch.setenv("MAX_SESSIONS", "0")
    with pytest.raises(ConfigError, match="between 1 and 256") as err:
        Settings.from_env()
    assert err.value.setting == "MAX_SESSIONS"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("MAX_VECTOR_DIM", "lots", "expected an integer, got 'lots'"),
        ("MAX_VECTOR_DIM", "0", "between 1 and 65536, got 0"),
        ("MAX_SESSIONS", " 257 ", "between 1 and 256, got 257"),
        ("MODELS_CONTAINER", "Models_Here", "not a valid container/queue name"),
        ("MODEL_UPLOADS_CONTAINER", "a--b", "not a valid container/queue name"),
        ("INGESTION_QUEUE", "ab", "not a valid container/queue name"),
        ("INSTANCE_MEMORY_MB", "lots", "expected an integer"),
        ("INSTANCE_MEMORY_MB", "64", "between 128 and"),
    ],
)
def test_invalid_values_name_the_setting(key: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as err:
        Settings.from_env({key: value})
    assert err.value.setting == key and str(err.value).startswith(f"setting {key}: ")


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
    from shared.settings import binding_name

    assert binding_name("INGESTION_QUEUE", {}) == "ingestion-jobs"
    assert binding_name("INGESTION_QUEUE", {"INGESTION_QUEUE": "jobs-2"}) == "jobs-2"
    assert binding_name("MODELS_CONTAINER", {"MODELS_CONTAINER": "Bad_Name"}) == "models"


def test_in_azure_nothing_falls_back_to_a_local_default() -> None:
    azure = {"WEBSITE_INSTANCE_ID": "abc", "INSTANCE_MEMORY_MB": "2048"}
    s = Settings.from_env(azure)
    assert s.azure and s.sql_connection is None
    with pytest.raises(ConfigError, match="required in Azure") as err:
        s.require("sql_connection")
    assert err.value.setting == "SQL_CONNECTION_STRING"
    assert s.data_dir == Path("/tmp/hartonomous")
    assert s.model_cache_bytes == 1024 * 1024 * 1024  # half of 2048 MB
    assert s.search_cache_bytes == 512 * 1024 * 1024  # a quarter
    relative = Settings.from_env({**azure, "DATA_DIR": "cache"})
    assert relative.data_dir == Path("/tmp/hartonomous/cache")  # never the app folder


def test_in_azure_a_relative_sqlite_path_is_refused() -> None:
    with pytest.raises(ConfigError, match="read-only") as err:
        Settings.from_env({"WEBSITE_INSTANCE_ID": "abc", "SQL_CONNECTION_STRING": "sqlite:///x.db"})
    assert err.value.setting == "SQL_CONNECTION_STRING"
    ok = Settings.from_env(
        {"WEBSITE_INSTANCE_ID": "a", "SQL_CONNECTION_STRING": "sqlite:////t/x.db"}
    )
    assert ok.sql_connection == "sqlite:////t/x.db"


def test_locally_caches_are_capped_at_4_gib_and_settings_still_win(tmp_path: Path) -> None:
    s = Settings.from_env({"INSTANCE_MEMORY_MB": "65536"})
    assert s.model_cache_bytes == s.search_cache_bytes == 4096 * 1024 * 1024
    assert Settings.from_env({"SEARCH_CACHE_BYTES": "2097152"}).search_cache_bytes == 2097152


def test_instance_memory_reads_the_cgroup_limit(tmp_path: Path) -> None:
    from shared.settings import instance_memory_bytes

    (tmp_path / "memory.max").write_text("2147483648\n")  # a 2048 MB instance (cgroup v2)
    assert instance_memory_bytes({}, cgroup_root=tmp_path) == 2 * 1024**3
    import os

    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    (tmp_path / "memory.max").write_text("max\n")  # no limit: physical memory
    assert instance_memory_bytes({}, cgroup_root=tmp_path) == physical
    assert instance_memory_bytes({"INSTANCE_MEMORY_MB": "512"}, cgroup_root=tmp_path) == 512 * 2**20
    with pytest.raises(ConfigError) as err:
        instance_memory_bytes({"INSTANCE_MEMORY_MB": "lots"})
    assert err.value.setting == "INSTANCE_MEMORY_MB"


def test_usable_cores_follow_the_cgroup_cpu_quota(tmp_path) -> None:
    import os

    from shared.settings import usable_cores

    allowed = len(os.sched_getaffinity(0))
    assert usable_cores(tmp_path) == allowed  # no quota file: the CPUs it may run on
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cores(tmp_path) == allowed
    (tmp_path / "cpu.max").write_text("100000 100000\n")  # one core (a 2048 MB instance)
    assert usable_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("25000 100000\n")  # a quarter core: still one thread
    assert usable_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{100000 * (allowed + 3)} 100000\n")
    assert usable_cores(tmp_path) == allowed  # a quota above the CPUs adds none
    (tmp_path / "cpu.max").unlink()
    v1 = tmp_path / "cpu"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores(tmp_path) == 1
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # v1's "no quota"
    assert usable_cores(tmp_path) == allowed
