"""infra/hooks/postdeploy.sh against the real local host: the migration call goes over
HTTP with the master key and migrates a fresh database; the Event Grid subscription is
made for the blob trigger's webhook, filtered to the models container; the blobs_extension
key, which appears only once the host has started, is asked for again until it does, for
a bounded time; no key is printed, nor put on any command line (where `ps` shows it to
every user of the machine): az and curl read them from files of a private folder, which
is gone when the hook ends, however it ends. `az` and `azd` cannot reach Azure here:
small stand-ins record what they were asked and answer what Azure would (the keys);
`sleep` records the waits instead of making them; curl is the real one, its arguments
recorded on the way. The hook runs under sh (as azd runs it) and bash.

postdeploy.ps1 cannot run here (no PowerShell): its `az` call is built from the script's
text and taken through PowerShell, cmd.exe and Azure CLI's own parsing as Windows would
(tests/infra/windows.py), and its retry is held to the .sh one."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import ROOT
from tests.infra import windows
from tests.support.host import MASTER_KEY, start_app, stop_host

BLOBS_KEY = "blobs-extension-key-value"
HOOKS = ROOT / "infra" / "hooks"
#: The most the hooks may wait for the blobs_extension key, in seconds.
KEY_WAIT_BOUND = 300
SHELLS = [
    pytest.param(
        shell,
        marks=pytest.mark.skipif(shutil.which(shell) is None, reason=f"{shell} is not installed"),
    )
    for shell in ("sh", "bash")
]
# The hook checks that curl is installed before anything else, and migrates with it.
needs_curl = pytest.mark.skipif(
    shutil.which("curl") is None, reason="curl is not installed; postdeploy.sh requires it"
)

# What every stand-in does first: record its arguments as one JSON line, with the
# content, mode and folder mode of each file an `@<path>` argument names as they are at
# the call (the hook removes them afterwards).
_RECORD = """
import json, os, signal, stat, sys
from pathlib import Path

args = sys.argv[1:]
files = {}
for arg in args:
    if arg.startswith("@"):
        path = Path(arg[1:])
        files[arg] = {
            "content": path.read_text(),
            "mode": stat.S_IMODE(path.stat().st_mode),
            "folder_mode": stat.S_IMODE(path.parent.stat().st_mode),
        }
calls = Path(CONFIG["calls"])
with calls.open("a") as out:
    out.write(json.dumps({"tool": CONFIG["tool"], "argv": args, "files": files}) + "\\n")
"""
_AZ = """
if "systemKeys.blobs_extension" in args:
    asked = sum(
        "systemKeys.blobs_extension" in json.loads(line)["argv"]
        for line in calls.read_text().splitlines()
    )
    if CONFIG["key_on_try"] is not None and asked >= CONFIG["key_on_try"]:
        print(CONFIG["blobs_key"])
elif "masterKey" in args:
    print(CONFIG["master_key"])
elif args[:1] == ["eventgrid"]:
    if CONFIG["subscription"] == "fails":
        print("ERROR: (InvalidRequest) the endpoint did not answer the validation", file=sys.stderr)
        sys.exit(1)
    if CONFIG["subscription"] == "interrupted":
        os.kill(os.getppid(), signal.SIGTERM)  # the hook's shell, as when azd is stopped
"""
_CURL = """
os.execv(CONFIG["real"], ["curl", *args])
"""


def _tool(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _recorder(folder: Path, name: str, config: dict, body: str) -> None:
    path = folder / name
    path.write_text(f"#!{sys.executable}\nCONFIG = {config!r}\n{_RECORD}{body}")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _stand_ins(
    folder: Path,
    base: str,
    calls: Path,
    key_on_try: int | None,
    subscription: str = "succeeds",
) -> None:
    """azd with the environment's values; az answering the blobs_extension key from the
    `key_on_try`th request on (None: never), and the master key; its Event Grid
    subscription succeeding, failing or interrupting the hook (`subscription`); sleep
    recording; curl recording, then the real curl."""
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
    az = {
        "tool": "az",
        "calls": str(calls),
        "key_on_try": key_on_try,
        "blobs_key": BLOBS_KEY,
        "master_key": MASTER_KEY,
        "subscription": subscription,
    }
    _recorder(folder, "az", az, _AZ)
    _recorder(folder, "sleep", {"tool": "sleep", "calls": str(calls)}, "")
    real_curl = shutil.which("curl")
    _recorder(folder, "curl", {"tool": "curl", "calls": str(calls), "real": real_curl}, _CURL)


def _run_hook(shell: str, bin_dir: Path, temp: Path, timeout: float) -> subprocess.CompletedProcess:
    """postdeploy.sh under `shell`, the stand-ins first on PATH, its temporary files
    under `temp`."""
    temp.mkdir()
    return subprocess.run(
        [shell, str(HOOKS / "postdeploy.sh")],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _options(argv: list[str], leading: int) -> dict[str, str]:
    return dict(zip(argv[leading::2], argv[leading + 1 :: 2], strict=True))


def _assert_no_key_on_a_command_line(calls: list[dict]) -> None:
    for call in calls:
        for arg in call["argv"]:
            assert BLOBS_KEY not in arg and MASTER_KEY not in arg, call


def _assert_webhook_handed_in_a_private_file(subscription: dict, base: str) -> Path:
    """The subscription's --endpoint is `@<file>`, a file only this user could read,
    holding the whole webhook URL with its key when az read it; the file's path."""
    options = _options(subscription["argv"], 4)
    assert options["--endpoint-type"] == "webhook"
    endpoint = options["--endpoint"]
    assert endpoint.startswith("@"), endpoint
    handed = subscription["files"][endpoint]
    assert handed["content"] == (
        f"{base}/runtime/webhooks/blobs?functionName="
        f"Host.Functions.register_model_blob&code={BLOBS_KEY}"
    )
    assert handed["mode"] == 0o600 and handed["folder_mode"] == 0o700
    return Path(endpoint[1:])


@needs_curl
@pytest.mark.parametrize("shell", SHELLS)
def test_postdeploy_subscribes_the_trigger_and_migrates(
    tmp_path: Path, storage_connection: str, shell: str
) -> None:
    (tmp_path / "host").mkdir()
    host = start_app(tmp_path / "host", storage_connection)
    calls_file = tmp_path / "calls.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    base = host.base_url.removesuffix("/api")
    # The key appears on the third request, as when the host is still starting.
    _stand_ins(bin_dir, base, calls_file, key_on_try=3)
    try:
        done = _run_hook(shell, bin_dir, tmp_path / "temp", timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        output = done.stdout + done.stderr
        assert BLOBS_KEY not in output and MASTER_KEY not in output
        assert '"applied":[1' in output  # the fresh database was migrated by this call
        calls = _calls(calls_file)
        _assert_no_key_on_a_command_line(calls)
        subscribed_at = next(i for i, c in enumerate(calls) if c["argv"][:1] == ["eventgrid"])
        before = calls[:subscribed_at]
        assert sum("systemKeys.blobs_extension" in c["argv"] for c in before) == 3
        assert [c["argv"] for c in before if c["tool"] == "sleep"] == [["10"]] * 2
        subscription = calls[subscribed_at]
        assert subscription["argv"][:4] == [
            "eventgrid",
            "system-topic",
            "event-subscription",
            "create",
        ]
        endpoint_file = _assert_webhook_handed_in_a_private_file(subscription, base)
        options = _options(subscription["argv"], 4)
        assert options["--system-topic-name"] == "evgt-blobs-test"
        assert options["--included-event-types"] == "Microsoft.Storage.BlobCreated"
        assert options["--subject-begins-with"] == "/blobServices/default/containers/models/blobs/"
        # curl took the master key from a file of the same private folder.
        (migrate,) = [c for c in calls if c["tool"] == "curl"]
        assert f"{base}/api/database/migrate" in migrate["argv"]
        (header,) = migrate["files"].values()
        assert header["content"].strip() == f"x-functions-key: {MASTER_KEY}"
        assert header["mode"] == 0o600 and header["folder_mode"] == 0o700
        assert not endpoint_file.parent.exists()
        assert list((tmp_path / "temp").iterdir()) == []
        schema = host.call("GET", "/database/schema").json()
        assert schema["version"] == schema["latest"]
    finally:
        stop_host(host)


@needs_curl
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("subscription", ["fails", "interrupted"])
def test_postdeploy_removes_the_webhook_file_when_the_subscription_does_not_complete(
    tmp_path: Path, shell: str, subscription: str
) -> None:
    """The Event Grid call fails, or the hook is stopped (SIGTERM) during it: the hook
    ends unsuccessfully, before migrating, and the file holding the key is gone."""
    calls_file = tmp_path / "calls.jsonl"
    base = "http://127.0.0.1:9"
    _stand_ins(tmp_path, base, calls_file, key_on_try=1, subscription=subscription)
    done = _run_hook(shell, tmp_path, tmp_path / "temp", timeout=60)
    assert done.returncode != 0
    if subscription == "interrupted":
        assert done.returncode == 128 + 15, done.stderr
    calls = _calls(calls_file)
    _assert_no_key_on_a_command_line(calls)
    (subscribed,) = [c for c in calls if c["argv"][:1] == ["eventgrid"]]
    endpoint_file = _assert_webhook_handed_in_a_private_file(subscribed, base)
    assert not endpoint_file.parent.exists()
    assert list((tmp_path / "temp").iterdir()) == []
    assert not any(c["tool"] == "curl" for c in calls)  # nothing migrated after it


@needs_curl
def test_postdeploy_gives_up_with_a_clear_message_when_the_key_never_appears(
    tmp_path: Path,
) -> None:
    calls_file = tmp_path / "calls.jsonl"
    _stand_ins(tmp_path, "http://127.0.0.1:9", calls_file, key_on_try=None)
    done = _run_hook("sh", tmp_path, tmp_path / "temp", timeout=60)
    assert done.returncode != 0
    assert "no blobs_extension key after 30 tries" in done.stderr
    calls = _calls(calls_file)
    assert sum("systemKeys.blobs_extension" in c["argv"] for c in calls) == 30
    waited = sum(int(c["argv"][0]) for c in calls if c["tool"] == "sleep")
    assert 0 < waited <= KEY_WAIT_BOUND
    assert not any(c["argv"][:1] == ["eventgrid"] for c in calls)  # nothing subscribed without it
    assert list((tmp_path / "temp").iterdir()) == []


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
