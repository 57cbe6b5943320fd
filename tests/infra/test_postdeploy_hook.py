"""infra/hooks/postdeploy.sh against the real local host: the migration call goes over
HTTP with the master key and migrates a fresh database; the Event Grid subscription is
made for the blob trigger's webhook, filtered to the models container; no key is printed.
`az` and `azd` cannot reach Azure here: small stand-ins record what they were asked and
answer what Azure would (the keys)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from shared.settings import ROOT
from tests.support.host import MASTER_KEY, start_app, stop_host

BLOBS_KEY = "blobs-extension-key-value"


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_postdeploy_subscribes_the_trigger_and_migrates(
    tmp_path: Path, storage_connection: str
) -> None:
    (tmp_path / "host").mkdir()
    host = start_app(tmp_path / "host", storage_connection)
    calls = tmp_path / "az-calls.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    base = host.base_url.removesuffix("/api")
    _tool(
        bin_dir,
        "azd",
        f"""cat <<'VALUES'
RESOURCE_GROUP="rg-test"
AZURE_FUNCTION_APP_NAME="func-test"
SERVICE_API_BASE_URL="{base}"
EVENT_GRID_SYSTEM_TOPIC_NAME="evgt-blobs-test"
MODELS_CONTAINER="models"
BLOB_TRIGGER_FUNCTION="register_model_blob"
VALUES
""",
    )
    _tool(
        bin_dir,
        "az",
        f"""printf '%s\\n' "$*" >> "{calls}"
case "$*" in
  *systemKeys.blobs_extension*) echo "{BLOBS_KEY}" ;;
  *masterKey*) echo "{MASTER_KEY}" ;;
esac
""",
    )
    try:
        done = subprocess.run(
            ["sh", str(ROOT / "infra" / "hooks" / "postdeploy.sh")],
            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        output = done.stdout + done.stderr
        assert BLOBS_KEY not in output and MASTER_KEY not in output
        assert '"applied":[1' in output  # the fresh database was migrated by this call
        subscription = next(line for line in calls.read_text().splitlines() if "eventgrid" in line)
        assert "--system-topic-name evgt-blobs-test" in subscription
        assert (
            f"--endpoint {base}/runtime/webhooks/blobs?functionName="
            f"Host.Functions.register_model_blob&code={BLOBS_KEY}"
        ) in subscription
        assert "--included-event-types Microsoft.Storage.BlobCreated" in subscription
        assert "--subject-begins-with /blobServices/default/containers/models/blobs/" in (
            subscription
        )
        schema = host.call("GET", "/database/schema").json()
        assert schema["version"] == schema["latest"]
    finally:
        stop_host(host)
