"""Which Flex Consumption instance size serves the most per GB-second: the app through
the local host over HTTP, at each size this machine can emulate, side by side in one run.

Flex Consumption instances have 512 MB and a quarter of a core, 2048 MB and one core, or
4096 MB and two cores, and are billed per GB-second of instance memory. Emulated here
(CPU affinity is set before the host is forked, so every thread and child inherits it):

- 2048 MB, 1 core: the host on the first CPU, ``INSTANCE_MEMORY_MB=2048``;
- 4096 MB, 2 cores: the host on both CPUs, ``INSTANCE_MEMORY_MB=4096``;
- 512 MB, a quarter core: the host on the first CPU inside a child CPU cgroup whose quota
  is 25 ms per 100 ms, ``INSTANCE_MEMORY_MB=512``, where this machine lets a child group
  be made (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``); where not, the output says
  so and the size is left out of the throughput table.

The load-generating client runs on the other CPU throughout: never on the 1-core hosts'
CPU, but on one of the 4096 MB host's two (whose figures are therefore a lower bound).
The CPU column is the CPU time the host used per second of a phase: on a busy machine
it shows whether a host got the share its size stands for. No memory limit is set:
each host's peak resident memory (VmRSS summed over its process tree, sampled every
50 ms from launch to stop) is reported against its size.

All hosts are up at once and every phase runs on one host after the other, so none is
measured on a quieter machine than another: single-query search of the N x D set (1
client, then CLIENTS clients, SECONDS each), then one-sentence MiniLM embedding if its
data packages are installed. Batching is on (the default).

Before them, the fit baseline: a host with ``INSTANCE_MEMORY_MB=512`` (no CPU limit: only
its memory is read), its RSS idle, after loading a 10k x 384 set and after the iris
classifier served a call. And what each size's search cache holds, from the settings'
own shares and the bytes per row the cache counts.

``BENCH_QUICK=1`` (the knob ``bench_concurrency`` reads, whose N and SECONDS follow it):
a smoke run with N = 10k, still searched compressed, and short phases; no figures worth
keeping.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.bench_concurrency import (
    CLIENTS,
    QUICK,
    SECONDS,
    TOP_K,
    D,
    N,
    _embedding_phases,
    _fill,
    _infer_body,
    _Memory,
    _phase,
    _process_tree,
    _resident_kb,
    _run,
    _wait_registered,
    search_data,
)
from benchmarks.timing import table
from devhost.launcher import LaunchedHost, Reply, launch_app

FIT_ROWS = 10_000
KEY = "bench"
HEADERS = {"Content-Type": "application/json", "x-functions-key": KEY}
PERIOD_US = 100_000  # the CPU quota's period: 100 ms, the kernel's default


@dataclass(frozen=True)
class Size:
    """One Flex Consumption instance size."""

    mb: int
    cores: float

    @property
    def label(self) -> str:
        return f"{self.mb} MB"

    @property
    def gb(self) -> float:
        return self.mb / 1024


SIZES = (Size(512, 0.25), Size(2048, 1), Size(4096, 2))


# -- CPU quota -------------------------------------------------------------------------


@dataclass
class CpuQuota:
    """A child CPU cgroup made by `cpu_quota`; removed once its hosts have exited."""

    path: Path

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        # The hosts have exited by now; a task that lingers is moved back to the parent,
        # or the kernel refuses to remove the group.
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                for pid in (self.path / "cgroup.procs").read_text().split():
                    with suppress(OSError):
                        (self.path.parent / "cgroup.procs").write_text(pid)
                time.sleep(0.1)
        print(f"(could not remove the CPU cgroup {self.path})")


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, filesystem type, options) of every cgroup mount."""
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            out.append((parts[1], parts[2], set(parts[3].split(","))))
    return out


def _own_groups() -> dict[str, str]:
    """This process's cgroup per hierarchy: "" for v2, else its controllers (v1)."""
    groups = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        groups[controllers] = path
    return groups


def cpu_quota(name: str, cores: float) -> tuple[CpuQuota | None, str]:
    """A child CPU cgroup limited to ``cores``, or None and why none could be made."""
    try:
        mounts, groups = _mounts(), _own_groups()
    except OSError as err:
        return None, f"cgroups unreadable: {err}"
    quota = str(int(cores * PERIOD_US))
    reasons = []
    for point, kind, options in mounts:
        if kind == "cgroup2" and "" in groups:
            parent = Path(point) / groups[""].lstrip("/")
            try:
                if "cpu" not in (parent / "cgroup.controllers").read_text().split():
                    reasons.append(f"cgroup v2 at {point}: no cpu controller")
                    continue
                child = parent / name
                child.mkdir(exist_ok=True)
                try:
                    (child / "cpu.max").write_text(f"{quota} {PERIOD_US}")
                except OSError:
                    child.rmdir()
                    raise
                return CpuQuota(child), f"cgroup v2 {child}/cpu.max = {quota} {PERIOD_US}"
            except OSError as err:
                reasons.append(f"cgroup v2 at {point}: {err}")
        elif kind == "cgroup" and "cpu" in options:
            own = next((p for c, p in groups.items() if "cpu" in c.split(",")), None)
            if own is None:
                continue
            child = Path(point) / own.lstrip("/") / name
            try:
                child.mkdir(exist_ok=True)
                try:
                    (child / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                    (child / "cpu.cfs_quota_us").write_text(quota)
                except OSError:
                    child.rmdir()
                    raise
                return CpuQuota(child), (
                    f"cgroup v1 {child}: cpu.cfs_quota_us {quota} per {PERIOD_US}"
                )
            except OSError as err:
                reasons.append(f"cgroup v1 at {point}: {err}")
    return None, "; ".join(reasons) or "no cgroup hierarchy with a cpu controller"


# -- processes, CPUs and memory --------------------------------------------------------


def tree_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) in MB, summed over ``pid``'s process tree."""
    kb = [_resident_kb(p) for p in _process_tree(pid)]
    return sum(r for r, _ in kb) // 1024, sum(a for _, a in kb) // 1024


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds spent so far by ``pid``'s process tree."""
    ticks = 0
    for p in _process_tree(pid):
        try:
            text = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_phase(host: LaunchedHost, bodies: list[bytes], clients: int) -> dict:
    """``_run``'s figures plus ``cores``, the host's CPU seconds per second meanwhile
    (whether it got the CPU its size stands for on a busy machine), and ``client_cores``,
    this process's (the CPU the client takes, from the 4096 MB host's second core)."""
    pid = host.process.pid
    cpu, own, start = tree_cpu_seconds(pid), time.process_time(), time.perf_counter()
    result = _run(host.port, bodies, clients, SECONDS)
    wall = time.perf_counter() - start
    result["cores"] = (tree_cpu_seconds(pid) - cpu) / wall
    result["client_cores"] = (time.process_time() - own) / wall
    return result


def tree_cpus(pid: int) -> set[frozenset[int]]:
    """The distinct CPU sets the threads of ``pid``'s process tree may run on."""
    seen = set()
    for p in _process_tree(pid):
        for task in Path(f"/proc/{p}/task").glob("[0-9]*"):
            with suppress(OSError):
                seen.add(frozenset(os.sched_getaffinity(int(task.name))))
    return seen


@contextmanager
def on_cpus(cpus: set[int]) -> Iterator[None]:
    """Run the calling thread on ``cpus``: a process or thread it starts inherits them."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# -- what fits -------------------------------------------------------------------------


def row_bytes(d: int = D, rows: int = 4096) -> dict[str, float]:
    """Bytes per row the search cache counts for a d-dim set, by the cache's own
    accounting (``LoadedSet.nbytes``): float32 searched by dot or euclidean, float32
    searched by cosine (a normalised copy beside it), and compressed (int8 codes and
    per-row bounds resident; the float32 rows live in a mapped file)."""
    from shared.search import exact, quantized
    from shared.search.loaded import LoadedSet

    x = np.random.default_rng(1).standard_normal((rows, d)).astype(np.float32)
    ids = [str(i) for i in range(rows)]
    plain = LoadedSet("m", "t", 1, ids, exact.prepare(x, "dot"))
    dot = plain.nbytes / rows
    plain.prepared("cosine")
    packed = LoadedSet("m", "t", 1, ids, None, quantized.quantize(x))
    return {"float32": dot, "float32 cosine": plain.nbytes / rows, "int8": packed.nbytes / rows}


def fits() -> tuple[str, list[str], list[list[str]]]:
    """Per size: every memory share ``shared.settings`` derives from INSTANCE_MEMORY_MB
    (by their keys) and how many rows the search cache's share holds."""
    from shared.settings import MemoryShare, MiB, Settings

    shares = [
        (name, field.alias)
        for name, field in Settings.model_fields.items()
        if any(isinstance(m, MemoryShare) for m in field.metadata)
    ]
    per_row = row_bytes()
    rows = []
    for size in SIZES:
        settings = Settings.from_env({"INSTANCE_MEMORY_MB": str(size.mb)})
        cache = settings.search_cache_bytes
        rows.append(
            [
                size.label,
                f"{size.cores:g}",
                *(f"{getattr(settings, name) / MiB:.0f} MiB" for name, _ in shares),
                f"{cache // per_row['float32']:,.0f}",
                f"{cache // per_row['float32 cosine']:,.0f}",
                f"{cache // per_row['int8']:,.0f}",
            ]
        )
    headers = [
        *("size", "cores"),
        *(str(key) for _, key in shares),
        *("float32 rows", "cosine rows", "compressed rows"),
    ]
    note = (
        f"rows: {D}-d rows SEARCH_CACHE_BYTES holds at {per_row['float32']:.0f} bytes each"
        f" (float32, dot or euclidean), {per_row['float32 cosine']:.0f} (float32 searched by"
        f" cosine: a normalised copy beside it), {per_row['int8']:.1f} (compressed: int8"
        " codes and per-row bounds; the float32 rows in a mapped file)"
    )
    return note, headers, rows


# -- the runs --------------------------------------------------------------------------


def _post(
    host: LaunchedHost, path: str, body: bytes, content_type: str = "application/json"
) -> Reply:
    return host.call("POST", path, body, {**HEADERS, "Content-Type": content_type}, timeout=600)


def _expect(host: LaunchedHost, reply: Reply, status: int) -> None:
    if reply.status != status:
        tail = host.log()[-4000:]
        raise AssertionError(f"{reply.status} {reply.body[:300]!r}; the host's log ends:\n{tail}")


def fit_baseline(tmp: Path, connection: str, search_body: bytes) -> dict[str, float]:
    """VmRSS (MB) of a 512 MB host: idle, with a FIT_ROWS x D set loaded, with the iris
    classifier registered and served too, and the peak over all of it."""
    from tests.support.models import iris, write_classifier

    rng = np.random.default_rng(2)
    db_url = f"sqlite:///{tmp / 'fit.db'}"
    _fill(db_url, rng.standard_normal((FIT_ROWS, D)).astype(np.float32))
    folder = tmp / "fit"
    folder.mkdir()
    host = launch_app(
        folder,
        connection,
        key=KEY,
        sql_connection=db_url,
        extra_env={"INSTANCE_MEMORY_MB": "512", "PYTHON_THREADPOOL_THREAD_COUNT": str(CLIENTS)},
    )
    pid = host.process.pid
    watcher = _Memory(pid)
    try:
        time.sleep(1.0)
        idle = tree_memory(pid)[0]
        _expect(host, _post(host, "/search", search_body), 200)
        with_set = tree_memory(pid)[0]
        model = write_classifier(folder).read_bytes()
        # POST /api/models stages the file where no blob trigger fires: the hosts started
        # later, on another database, never see this model.
        reply = _post(host, "/models?name=fit-iris", model, "application/octet-stream")
        _expect(host, reply, 202)
        status = _wait_registered(host.port, "fit-iris")
        if status != "ready":
            raise AssertionError(
                f"fit-iris is {status}; the host's log ends:\n{host.log()[-4000:]}"
            )
        reply = _post(host, "/v2/models/fit-iris/infer", _infer_body("X", iris()[0][0]))
        _expect(host, reply, 200)
        with_model = tree_memory(pid)[0]
    finally:
        watcher.stop()
        host.stop()
    return {"idle": idle, "set": with_set, "iris": with_model, "peak": watcher.peaks["whole run"]}


@dataclass
class Measured:
    sizes: list[Size]
    baseline: dict[str, float]  # fit baseline VmRSS, MB: idle, set, iris, peak
    loads: dict[str, float]  # seconds of each host's first search (loads the set)
    workloads: dict[str, dict[str, tuple[dict, dict]]]  # workload -> size -> (1, CLIENTS)
    memory: dict[str, _Memory]  # peaks per phase ("search", "embedding", "whole run"), MB


def measure(quota: CpuQuota | None, client_cpu: int) -> Measured:
    """The fit baseline, then every phase on every emulated size; see the module doc."""
    from devhost import azurite

    sizes = [s for s in SIZES if s.mb != 512 or quota is not None]
    every_cpu = os.sched_getaffinity(0)
    one_cpu = {min(every_cpu - {client_cpu})}
    vectors, bodies = search_data()
    hosts: dict[str, LaunchedHost] = {}
    memory: dict[str, _Memory] = {}
    loads: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        db_url = f"sqlite:///{tmp / 'bench.db'}"
        _fill(db_url, vectors)
        storage = azurite.start(tmp / "azurite")
        try:
            baseline = fit_baseline(tmp, storage.connection_string, bodies[0])
            for size in sizes:
                folder = tmp / f"size-{size.mb}"
                folder.mkdir()
                env = {
                    "INSTANCE_MEMORY_MB": str(size.mb),
                    "PYTHON_THREADPOOL_THREAD_COUNT": str(CLIENTS),
                    # No snapshot upload while measuring: every host loads the set from SQL.
                    "SEARCH_SNAPSHOT_SETTLE_SECONDS": "86400",
                }
                if QUICK:  # the smoke run's smaller set is still searched compressed
                    env["SEARCH_COMPRESS_FROM_ROWS"] = str(N)
                cpus = every_cpu if size.cores > 1 else one_cpu
                with on_cpus(cpus):
                    hosts[size.label] = launch_app(
                        folder,
                        storage.connection_string,
                        key=KEY,
                        sql_connection=db_url,
                        extra_env=env,
                    )
                pid = hosts[size.label].process.pid
                if size.mb == 512 and quota is not None:
                    for p in _process_tree(pid):
                        quota.add(p)
                seen = tree_cpus(pid)
                assert seen == {frozenset(cpus)}, (size.label, seen)
                with on_cpus({client_cpu}):  # the sampling thread runs beside the client
                    memory[size.label] = _Memory(pid)
            watching = list(memory.values())
            with on_cpus({client_cpu}):
                # "search": the set loaded and searched, before any model is registered
                # (whichever host runs the MiniLM registration job peaks higher for it).
                with _phase(watching, "search"):
                    for label, host in hosts.items():
                        start = time.perf_counter()
                        reply = _post(host, "/search", bodies[0])  # loads the set
                        loads[label] = time.perf_counter() - start
                        _expect(host, reply, 200)
                        _run(host.port, bodies[:4], 1, 2.0)  # warm-up
                    # Every phase on one host after the other: none is measured on a
                    # quieter machine than another.
                    one = {label: run_phase(h, bodies, 1) for label, h in hosts.items()}
                    many = {label: run_phase(h, bodies, CLIENTS) for label, h in hosts.items()}
                with _phase(watching, "embedding"):
                    embedding = _embedding_phases(hosts, storage.connection_string)
        finally:
            for w in memory.values():
                w.stop()
            for h in hosts.values():
                h.stop()
            storage.stop()
    workloads = {"search": {k: (one[k], many[k]) for k in hosts}}
    if embedding:
        workloads["embed"] = embedding
    return Measured(sizes, baseline, loads, workloads, memory)


def report(m: Measured, client_cpu: int) -> None:
    base = m.baseline
    print(
        f"\nfit baseline, INSTANCE_MEMORY_MB=512 (no CPU limit), VmRSS of the host: idle"
        f" {base['idle']:.0f} MB; {FIT_ROWS:,} x {D} set loaded {base['set']:.0f} MB;"
        f" iris served too {base['iris']:.0f} MB; peak {base['peak']:.0f} MB: "
        + ("fits in 512 MB" if base["peak"] < 512 else "does NOT fit in 512 MB")
    )
    by_label = {s.label: s for s in m.sizes}
    rows = []
    for workload, results in m.workloads.items():
        for label, (r1, rn) in results.items():
            size, peaks = by_label[label], m.memory[label].peaks
            rows.append(
                [
                    label,
                    f"{size.cores:g}",
                    workload,
                    f"{r1['rps']:.0f}",
                    f"{r1['p95']:.1f}",
                    f"{rn['rps']:.0f}",
                    f"{rn['p95']:.1f}",
                    f"{rn['cores']:.2f}" if "cores" in rn else "-",
                    f"{r1['rps'] / size.gb:.1f}",
                    f"{rn['rps'] / size.gb:.1f}",
                    f"{peaks.get('search', 0):.0f}",
                    f"{peaks['whole run']:.0f}",
                    f"{m.memory[label].peak_anon:.0f}",
                ]
            )
    headers = (
        *("size", "cores", "workload", "req/s 1", "p95 ms", f"req/s {CLIENTS}", "p95 ms"),
        *(f"CPU {CLIENTS}", "req/GB-s 1", f"req/GB-s {CLIENTS}"),
        *("search RSS MB", "peak RSS MB", "peak anon MB"),
    )
    title = (
        f"\nsearch: {N:,} x {D} compressed, top {TOP_K}, one query per call; embed: one"
        f" sentence, MiniLM; local host over HTTP, batching on, {SECONDS:g} s per phase,"
        f" client on CPU {client_cpu}; CPU: cores the host used; req/GB-s: req/s per GB of"
        " instance memory; search RSS: peak until the search phases end; peak: over the run"
    )
    print(table(title, headers, rows))
    loads = ", ".join(f"{k} {v:.1f} s" for k, v in m.loads.items())
    print(f"first search (loads the set): {loads}")
    client = ", ".join(
        f"{k} {many['client_cores']:.2f}" for k, (_, many) in m.workloads["search"].items()
    )
    print(f"cores the client used, search at {CLIENTS} clients, on CPU {client_cpu}: {client}")
    for workload, results in m.workloads.items():
        odd = {k: r[1]["codes"] for k, r in results.items() if set(r[1]["codes"]) - {200}}
        if odd:
            print(f"{workload}, {CLIENTS} clients, replies other than 200: {odd}")
        best = max(results, key=lambda k: results[k][1]["rps"] / by_label[k].gb)
        print(f"{workload}: most req/s per GB-second at {CLIENTS} clients: {best}")
    over = [k for k in by_label if m.memory[k].peaks["whole run"] >= by_label[k].mb]
    if over:
        print(f"peak RSS above the instance's memory: {', '.join(over)}")


def main() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        print(f"needs two CPUs (one for the host, one for the client); this process has {allowed}")
        return
    client_cpu = allowed[-1]
    note, headers, rows = fits()
    print(
        table(
            "what fits: the memory shares of INSTANCE_MEMORY_MB (shared/settings.py)", headers, rows
        )
    )
    print(note)
    quota, how = cpu_quota(f"bench-instance-size-{os.getpid()}", 0.25)
    if quota is None:
        print(f"512 MB, a quarter core: not emulated (no CPU quota can be set here: {how});")
        print("  only whether the app fits in 512 MB is measured")
    else:
        print(f"512 MB, a quarter core: {how}")
    try:
        measured = measure(quota, client_cpu)
    finally:
        if quota is not None:
            quota.remove()
    report(measured, client_cpu)
