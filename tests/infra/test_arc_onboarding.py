"""infra/arc/onboard-sql-host.sh: lint (bash -n, shellcheck) and its --dry-run, which
prints every command the real run would execute (the same `run` function executes
them). Azure Arc itself cannot be reached here."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.settings import ROOT

SCRIPT = ROOT / "infra" / "arc" / "onboard-sql-host.sh"
SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "66666666-7777-8888-9999-000000000000"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = 's3cr3t-Value/with"quote'
WORKSPACE = (
    f"/subscriptions/{SUB}/resourceGroups/rg-mon"
    "/providers/Microsoft.OperationalInsights/workspaces/law-hart"
)
BASE = [
    "--subscription-id", SUB, "--resource-group", "rg-hart", "--location", "westeurope",
    "--tenant-id", TENANT, "--workspace-id", WORKSPACE, "--machine-name", "sql01",
]  # fmt: skip


def dry_run(*args: str, work_dir: Path | None = None) -> subprocess.CompletedProcess:
    extra = ["--work-dir", str(work_dir)] if work_dir else []
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", *args, *extra],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")},
    )


def commands(out: str) -> list[list[str]]:
    """The printed commands, parsed back into argv lists."""
    return [shlex.split(line[2:]) for line in out.splitlines() if line.startswith("+ ")]


def find(cmds: list[list[str]], *prefix: str) -> list[list[str]]:
    return [c for c in cmds if c[: len(prefix)] == list(prefix)]


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


@pytest.fixture
def sp_config(tmp_path: Path) -> Path:
    path = tmp_path / "sp.conf"
    path.write_text(f"# Arc onboarding\nclient_id={CLIENT}\nclient_secret={SECRET}\n")
    path.chmod(0o600)
    return path


def test_bash_syntax_and_shellcheck() -> None:
    assert "\nset -euo pipefail\n" in SCRIPT.read_text()
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert shutil.which("shellcheck"), "shellcheck missing: make setup (scripts/system-deps.sh)"
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_device_code_dry_run_prints_every_step_with_the_parameters(tmp_path: Path) -> None:
    done = dry_run(*BASE, work_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    cmds = commands(done.stdout)
    [connect] = find(cmds, "azcmagent", "connect")
    assert flag(connect, "--subscription-id") == SUB
    assert flag(connect, "--resource-group") == "rg-hart"
    assert flag(connect, "--location") == "westeurope"
    assert flag(connect, "--tenant-id") == TENANT
    assert flag(connect, "--resource-name") == "sql01"
    assert "--use-device-code" in connect
    [login] = find(cmds, "az", "login")
    assert "--use-device-code" in login and flag(login, "--tenant") == TENANT
    assert find(cmds, "az", "account", "set", "--subscription", SUB)
    extensions = find(cmds, "az", "connectedmachine", "extension", "create")
    assert [flag(c, "--name") for c in extensions] == [
        "LinuxAgent.SqlServer",
        "AzureMonitorLinuxAgent",
    ]
    for ext in extensions:
        assert flag(ext, "--machine-name") == "sql01"
        assert flag(ext, "--resource-group") == "rg-hart"
        assert flag(ext, "--subscription") == SUB
    sql = extensions[0]
    assert flag(sql, "--publisher") == "Microsoft.AzureData"
    assert json.loads(flag(sql, "--settings"))["LicenseType"] == "PAYG"
    assert flag(extensions[1], "--publisher") == "Microsoft.Azure.Monitor"
    [dcr] = find(cmds, "az", "monitor", "data-collection", "rule", "create")
    rule = json.loads(Path(flag(dcr, "--rule-file")).read_text())
    assert rule["location"] == "westeurope" and rule["kind"] == "Linux"
    props = rule["properties"]
    assert props["destinations"]["logAnalytics"][0]["workspaceResourceId"] == WORKSPACE
    counters = props["dataSources"]["performanceCounters"][0]
    assert counters["streams"] == ["Microsoft-Perf"] and counters["counterSpecifiers"]
    assert props["dataFlows"][0]["destinations"] == ["workspace"]
    [assoc] = find(cmds, "az", "monitor", "data-collection", "rule", "association", "create")
    assert flag(assoc, "--rule-id").endswith("/dataCollectionRules/hartonomous-sql-perf")
    assert flag(assoc, "--resource") == (
        f"/subscriptions/{SUB}/resourceGroups/rg-hart/providers/Microsoft.HybridCompute/machines/sql01"
    )
    # the order that works: connect, sign in, extensions, then the rule
    order = [c[:2] for c in cmds]
    assert order.index(["azcmagent", "connect"]) < order.index(["az", "login"])
    assert cmds.index(extensions[1]) < cmds.index(dcr) < cmds.index(assoc)


def test_windows_hosts_get_the_windows_extensions_and_sql_counters(tmp_path: Path) -> None:
    done = dry_run(*BASE, "--os", "windows", "--skip-connect", work_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    cmds = commands(done.stdout)
    assert not find(cmds, "azcmagent")
    names = [flag(c, "--name") for c in find(cmds, "az", "connectedmachine", "extension", "create")]
    assert names == ["WindowsAgent.SqlServer", "AzureMonitorWindowsAgent"]
    [dcr] = find(cmds, "az", "monitor", "data-collection", "rule", "create")
    rule = json.loads(Path(flag(dcr, "--rule-file")).read_text())
    counters = rule["properties"]["dataSources"]["performanceCounters"][0]["counterSpecifiers"]
    assert rule["kind"] == "Windows"
    assert any(c.startswith("\\SQLServer:") for c in counters)


def test_service_principal_secret_is_never_on_a_command_line_nor_printed(
    sp_config: Path, tmp_path: Path
) -> None:
    done = dry_run(*BASE, "--auth", "service-principal", "--sp-config", str(sp_config))
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "s3cr3t" not in done.stdout + done.stderr
    cmds = commands(done.stdout)
    assert cmds and all(SECRET not in arg for cmd in cmds for arg in cmd)
    [connect] = find(cmds, "azcmagent", "connect")
    assert "--service-principal-secret" not in connect and "--use-device-code" not in connect
    config = flag(connect, "--config")  # azcmagent reads id and secret from this file
    assert f"would write {config} (mode 600): service-principal-id={CLIENT} " in done.stdout
    assert "service-principal-secret=****" in done.stdout
    [login] = find(cmds, "az", "login")
    assert "--service-principal" in login and flag(login, "-u") == CLIENT
    assert flag(login, "-p").startswith("@")  # az reads the secret from the file
    assert not Path(config).parent.exists()  # the private directory is gone at exit


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_config_file_others_can_read_is_refused(sp_config: Path, mode: int) -> None:
    sp_config.chmod(mode)
    done = dry_run(*BASE, "--auth", "service-principal", "--sp-config", str(sp_config))
    assert done.returncode != 0
    assert f"chmod 600 {sp_config}" in done.stderr
    assert not commands(done.stdout)  # nothing would run
    assert "s3cr3t" not in done.stdout + done.stderr


def test_a_config_without_a_secret_or_a_symlink_is_refused(sp_config: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.conf"
    link.symlink_to(sp_config)
    done = dry_run(*BASE, "--auth", "service-principal", "--sp-config", str(link))
    assert done.returncode != 0 and "not a regular file" in done.stderr
    sp_config.write_text(f"client_id={CLIENT}\n")
    done = dry_run(*BASE, "--auth", "service-principal", "--sp-config", str(sp_config))
    assert done.returncode != 0 and "client_secret= is missing" in done.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--subscription-id", "not-a-guid"), "--subscription-id is not a GUID"),
        (("--tenant-id", "x"), "--tenant-id is not a GUID"),
        (("--location", "West Europe"), "--location"),
        (("--resource-group", "rg;rm -rf /"), "--resource-group"),
        (("--workspace-id", "law-hart"), "--workspace-id"),
    ],
)
def test_bad_parameters_stop_before_any_command(change: tuple[str, str], message: str) -> None:
    args = list(BASE)
    args[args.index(change[0]) + 1] = change[1]
    done = dry_run(*args)
    assert done.returncode != 0 and message in done.stderr
    assert not commands(done.stdout)


def test_a_missing_required_parameter_shows_the_usage() -> None:
    args = list(BASE)
    i = args.index("--tenant-id")
    del args[i : i + 2]
    done = dry_run(*args)
    assert done.returncode != 0
    assert "usage:" in done.stderr and "missing --tenant-id" in done.stderr


def test_a_config_saved_on_windows_is_read(sp_config: Path) -> None:
    sp_config.write_bytes(f"client_id={CLIENT}\r\nclient_secret={SECRET}\r\n".encode())
    done = dry_run(*BASE, "--auth", "service-principal", "--sp-config", str(sp_config))
    assert done.returncode == 0, done.stderr
    [login] = find(commands(done.stdout), "az", "login")
    assert flag(login, "-u") == CLIENT
