"""host.json TimeSpans and defaults, local.settings.json loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.hostconfig import (
    HostConfig,
    QueueOptions,
    load_host_config,
    parse_host_config,
    parse_timespan,
)
from devhost.localsettings import load_local_settings


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:00", 0.0),
        ("00:00:01", 1.0),
        ("00:01:00", 60.0),
        ("01:00:00", 3600.0),
        ("00:00:00.5", 0.5),
        ("00:00:00.250", 0.25),
        ("00:02", 120.0),
        ("1.02:03:04", 93784.0),
        ("2", 172800.0),
        ("-1", -86400.0),
        ("-00:00:01", -1.0),
        (5, 5.0),
        (0.5, 0.5),
    ],
)
def test_timespan(text: str | float, seconds: float) -> None:
    assert parse_timespan(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1:2:3:4", "00:60:00", "24:00:00", "abc", "00:00:61", True])
def test_bad_timespan(text: object) -> None:
    with pytest.raises(ValueError):
        parse_timespan(text)


def test_defaults_without_host_json(tmp_path: Path) -> None:
    config = load_host_config(tmp_path)
    assert config == HostConfig()
    assert config.route_prefix == "api"
    assert config.queues == QueueOptions(
        batch_size=16,
        new_batch_threshold=8,
        max_polling_interval=60.0,
        visibility_timeout=0.0,
        max_dequeue_count=5,
        message_encoding="base64",
    )
    assert config.poison_blob_threshold == 5


def test_host_json_values() -> None:
    config = parse_host_config(
        {
            "functionTimeout": "00:02:00",
            "functions": ["a", "b"],
            "extensions": {
                "http": {"routePrefix": "", "customHeaders": {"X-Frame-Options": "DENY"}},
                "queues": {
                    "batchSize": 4,
                    "maxPollingInterval": "00:00:02",
                    "visibilityTimeout": "00:00:05",
                    "maxDequeueCount": 3,
                    "messageEncoding": "None",
                },
                "blobs": {"maxDegreeOfParallelism": 2, "poisonBlobThreshold": 2},
            },
        }
    )
    assert config.route_prefix == ""
    assert config.function_timeout == 120.0
    assert config.functions == ("a", "b")
    assert config.blob_parallelism == 2
    assert config.poison_blob_threshold == 2
    assert config.custom_headers == (("X-Frame-Options", "DENY"),)
    assert config.queues == QueueOptions(4, 2, 2.0, 5.0, 3, "none")  # threshold: batch / 2


def test_unlimited_function_timeout() -> None:
    assert parse_host_config({"functionTimeout": "-1"}).function_timeout is None


@pytest.mark.parametrize(
    "queues",
    [
        {"batchSize": 0},
        {"batchSize": 33},
        {"messageEncoding": "utf8"},
        {"maxPollingInterval": "00:00:00.01"},
        {"maxDequeueCount": "5"},
    ],
)
def test_bad_queue_options(queues: dict) -> None:
    with pytest.raises(ValueError):
        parse_host_config({"extensions": {"queues": queues}})


def test_repo_host_json_parses() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_host_config(root)
    assert config.queues.max_dequeue_count == 5


def test_local_settings_fill_missing_environment_only(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps(
            {
                "IsEncrypted": False,
                "Values": {"A": "from-file", "B": "from-file", "N": 3},
                "Host": {"LocalHttpPort": 7199},
            }
        )
    )
    env = {"A": "from-env"}
    settings = load_local_settings(tmp_path, env)
    assert env == {"A": "from-env", "B": "from-file", "N": "3"}
    assert set(settings.applied) == {"B", "N"}
    assert settings.local_http_port == 7199
    assert load_local_settings(tmp_path / "missing", {}).applied == ()


def test_app_settings_override_host_json_values_as_in_azure(tmp_path) -> None:
    import json

    from devhost.hostconfig import load_host_config

    (tmp_path / "host.json").write_text(
        json.dumps({"extensions": {"queues": {"batchSize": 16, "visibilityTimeout": "00:00:05"}}})
    )
    env = {
        "AzureFunctionsJobHost__extensions__queues__batchSize": "4",
        "AzureFunctionsJobHost__Extensions__Queues__VisibilityTimeout": "00:00:00",
        "AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "2",
        "AzureFunctionsJobHost__extensions__http__routePrefix": "v1",
        "UNRELATED": "x",
    }
    config = load_host_config(tmp_path, env)
    assert config.queues.batch_size == 4
    assert config.queues.visibility_timeout == 0
    assert config.queues.max_dequeue_count == 2
    assert config.route_prefix == "v1"
    assert load_host_config(tmp_path, {}).queues.batch_size == 16
