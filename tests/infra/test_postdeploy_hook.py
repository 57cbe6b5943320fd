"""infra/hooks/postdeploy.sh against the real local host: the migration call goes over
HTTP with the master key and migrates a fresh database; the Event Grid subscription is
made for the blob trigger's webhook, filtered to the models container; the blobs_extension
key, which appears only once the host has started, is asked for again until it does, for
a bounded time; no key is printed. `az` and `azd` cannot reach Azure here: small
stand-ins record what they were asked and answer what Azure would (the keys); `sleep`
records the waits instead of making them.

postdeploy.ps1 cannot run here (no PowerShell): its `az` call is built from the script's
text and taken through PowerShell, cmd.exe and Azure CLI's own parsing as Windows would
(tests/infra/windows.py), and its retry is held to the .sh one."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from shared.settings import ROOT
from tests.infra import windows
from tests.support.host import MASTER_KEY, start_app, stop_host

BLOBS_KEY = "blobs-extension-key-value"
HOOKS = ROOT / "infra" / "hooks"
#: The most the hooks may wait for the blobs_extension key, in seconds.
KEY_WAIT_BOUND = 300


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _stand_ins(folder: Path, base: str, calls: Path, key_on_try: int | None) -> None:
    """azd with the environment's values; az answering the blobs_extension key from the
    `key_on_try`th request on (None: never), and the master key; sleep recording."""
    _tool(
        folder,
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
    answer = "" if key_on_try is None else f'[ "$n" -ge {key_on_try} ] && echo "{BLOBS_KEY}"'
    _tool(
        folder,
        "az",
        f"""printf '%s\\n' "$*" >> "{calls}"
case "$*" in
  *systemKeys.blobs_extension*)
    n=$(grep -c systemKeys.blobs_extension "{calls}")
    {answer}
    exit 0 ;;
  *masterKey*) echo "{MASTER_KEY}" ;;
esac
""",
    )
    _tool(folder, "sleep", f'printf \'sleep %s\\n\' "$*" >> "{calls}"\n')


def test_postdeploy_subscribes_the_trigger_and_migrates(
    tmp_path: Path, storage_connection: str
) -> None:
    (tmp_path / "host").mkdir()
    host = start_app(tmp_path / "host", storage_connection)
    calls = tmp_path / "az-calls.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    base = host.base_url.removesuffix("/api")
    # The key appears on the third request, as when the host is still starting.
    _stand_ins(bin_dir, base, calls, key_on_try=3)
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
        lines = calls.read_text().splitlines()
        subscribed_at = next(i for i, line in enumerate(lines) if "eventgrid" in line)
        before = lines[:subscribed_at]
        assert sum("systemKeys.blobs_extension" in line for line in before) == 3
        assert [line for line in before if line.startswith("sleep")] == ["sleep 10"] * 2
        subscription = lines[subscribed_at]
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


def test_postdeploy_gives_up_with_a_clear_message_when_the_key_never_appears(
    tmp_path: Path,
) -> None:
    calls = tmp_path / "az-calls.txt"
    _stand_ins(tmp_path, "http://127.0.0.1:9", calls, key_on_try=None)
    done = subprocess.run(
        ["sh", str(HOOKS / "postdeploy.sh")],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "no blobs_extension key after 30 tries" in done.stderr
    lines = calls.read_text().splitlines()
    assert sum("systemKeys.blobs_extension" in line for line in lines) == 30
    waited = sum(int(line.split()[1]) for line in lines if line.startswith("sleep"))
    assert 0 < waited <= KEY_WAIT_BOUND
    assert not any("eventgrid" in line for line in lines)  # nothing subscribed without it


# postdeploy.ps1, read rather than run.

PS1 = HOOKS / "postdeploy.ps1"
VALUES = {
    "RESOURCE_GROUP": "rg-test",
    "AZURE_FUNCTION_APP_NAME": "func-test",
    "SERVICE_API_BASE_URL": "https://func-test.azurewebsites.net",
    "EVENT_GRID_SYSTEM_TOPIC_NAME": "evgt-blobs-test",
    "MODELS_CONTAINER": "models",
    "BLOB_TRIGGER_FUNCTION": "register_model_blob",
}
# Function keys are base64 text: `=` and `/` come in them.
PS_BLOBS_KEY = "k3y/Blobs+ext=="


def _az(source: str, mode: str = "Legacy", cwd: Path = ROOT) -> list[str]:
    return windows.az_arguments(
        windows.command_line(windows.powershell_arguments(source, {}), mode), cwd
    )


def test_the_windows_model_reads_az_calls_as_azure_cli_documents() -> None:
    """The cases of Azure CLI's own page on quoting with PowerShell, so the model the next
    test relies on is the one Windows has."""
    with pytest.raises(AssertionError, match="more than az"):
        _az('az "a&b" --debug')  # 'b' is not recognized as an internal or external command
    assert _az("az '\"a&b\"' --debug") == ["a&b", "--debug"]
    assert _az('az "`"a&b`"" --debug') == ["a&b", "--debug"]
    assert _az('az "a&b " --debug') == ["a&b ", "--debug"]
    assert _az('az --debug \'{\\"key\\": \\"value\\"}\'') == ["--debug", '{"key": "value"}']
    # Quotes written into the argument hold only in Legacy passing: Standard escapes them.
    with pytest.raises(AssertionError, match="more than az"):
        _az("az '\"a&b\"' --debug", mode="Standard")
    assert windows.cmd_pieces("az a^&b") == ["az a&b"]


@pytest.mark.parametrize("mode", ["Legacy", "Standard"])
def test_the_powershell_hook_hands_az_the_whole_webhook_url(tmp_path: Path, mode: str) -> None:
    """The Event Grid subscription's `az` call, built from postdeploy.ps1 as PowerShell
    would (either way of passing arguments) and read as cmd.exe, az.cmd, python.exe and
    Azure CLI do: one command, whose --endpoint is the URL with its key, which is on no
    command line."""
    script = PS1.read_text()
    variables = windows.assignments(script, {"values": VALUES, "blobsKey": PS_BLOBS_KEY})
    # The files the hook writes into its folder before it runs az there.
    writes = re.findall(
        r"\[IO\.File\]::WriteAllText\(\(Join-Path \$workDir '([^']+)'\), \$(\w+)\)", script
    )
    for name, variable in writes:
        (tmp_path / name).write_text(variables[variable], encoding="utf-8")
    call = windows.statement(script, "az eventgrid system-topic event-subscription create")
    if writes:
        before_call = script[: script.index("az eventgrid system-topic")]
        assert "Push-Location -LiteralPath $workDir" in before_call
    line = windows.command_line(windows.powershell_arguments(call, variables), mode)
    args = windows.az_arguments(line, tmp_path)  # fails if cmd.exe runs anything else
    assert args[:4] == ["eventgrid", "system-topic", "event-subscription", "create"]
    options = dict(zip(args[4::2], args[5::2], strict=True))
    assert options["--endpoint"] == (
        "https://func-test.azurewebsites.net/runtime/webhooks/blobs"
        f"?functionName=Host.Functions.register_model_blob&code={PS_BLOBS_KEY}"
    )
    assert options["--system-topic-name"] == "evgt-blobs-test"
    assert options["--subject-begins-with"] == "/blobServices/default/containers/models/blobs/"
    assert options["--included-event-types"] == "Microsoft.Storage.BlobCreated"
    # Nor can a process listing show the key.
    assert PS_BLOBS_KEY not in line


def _key_loop(text: str, start: str, end: str) -> str:
    """The part of a hook from the loop that reads the blobs_extension key to its end."""
    begin = text.rindex(start, 0, text.index("systemKeys.blobs_extension"))
    return text[begin : text.index(end, begin)]


def test_the_powershell_hook_waits_for_the_key_as_the_sh_hook_does() -> None:
    sh = _key_loop((HOOKS / "postdeploy.sh").read_text(), "until ", "\ndone\n")
    ps1 = _key_loop(PS1.read_text(), "for (", "\n}\n")
    sh_tries = int(re.search(r'\[ "\$tries" -ge (\d+) \]', sh)[1])  # type: ignore[index]
    sh_wait = int(re.search(r"^\s*sleep (\d+)$", sh, re.M)[1])  # type: ignore[index]
    ps_tries = int(re.search(r"if \(\$try -ge (\d+)\)", ps1)[1])  # type: ignore[index]
    ps_wait = int(re.search(r"Start-Sleep -Seconds (\d+)", ps1)[1])  # type: ignore[index]
    assert (ps_tries, ps_wait) == (sh_tries, sh_wait)
    assert (sh_tries - 1) * sh_wait <= KEY_WAIT_BOUND
    # The key is asked for inside the loop, which ends on it or gives up with one message.
    assert (
        "az functionapp keys list" in ps1
        and "if ($LASTEXITCODE -eq 0 -and $blobsKey) { break }" in ps1
    )
    message = re.search(r'echo "(postdeploy: [^"]+)" >&2', sh)[1]  # type: ignore[index]
    assert f'throw "{message}"' in ps1
