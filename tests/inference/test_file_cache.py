"""ModelFileCache on a real folder: LRU by bytes, sha256 verification, one fetch per sha."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.inference.file_cache import ModelFileCache
from shared.registry.errors import IntegrityError


def blob(i: int, size: int = 1000) -> tuple[bytes, str]:
    data = bytes([i % 256]) * size
    return data, hashlib.sha256(data).hexdigest()


def writer(data: bytes, calls: list[int] | None = None) -> Callable[[Path], None]:
    def fetch(dest: Path) -> None:
        if calls is not None:
            calls.append(1)
        dest.write_bytes(data)

    return fetch


def cached(cache: ModelFileCache) -> set[str]:
    return {p.parent.name for p in cache.root.glob("*/model.onnx")}


def cached_bytes(cache: ModelFileCache) -> int:
    return sum(p.stat().st_size for p in cache.root.glob("*/model.onnx"))


def test_hit_returns_the_same_file_without_fetching(tmp_path: Path) -> None:
    cache = ModelFileCache(tmp_path / "c", 10_000)
    data, sha = blob(1)
    calls: list[int] = []
    first = cache.path_for(sha, writer(data, calls))
    second = cache.path_for(sha.upper(), writer(data, calls))
    assert first == second and first.read_bytes() == data
    assert len(calls) == 1 and cache.fetches == 1


def test_least_recently_used_files_are_evicted_by_bytes(tmp_path: Path) -> None:
    cache = ModelFileCache(tmp_path / "c", 2500)  # room for two 1000-byte files
    (a, sa), (b, sb), (c, sc) = blob(1), blob(2), blob(3)
    cache.path_for(sa, writer(a))
    cache.path_for(sb, writer(b))
    cache.path_for(sa, writer(a))  # a is now more recent than b
    cache.path_for(sc, writer(c))
    assert cached(cache) == {sa, sc}
    assert cached_bytes(cache) == 2000


def test_a_file_bigger_than_the_cache_is_served_then_evicted(tmp_path: Path) -> None:
    cache = ModelFileCache(tmp_path / "c", 1500)
    big, sbig = blob(7, 4000)
    path = cache.path_for(sbig, writer(big))
    assert path.read_bytes() == big  # served although it alone exceeds max_bytes
    small, ssmall = blob(8)
    cache.path_for(ssmall, writer(small))
    assert cached(cache) == {ssmall}


def test_sha_mismatch_is_refused_and_not_cached(tmp_path: Path) -> None:
    cache = ModelFileCache(tmp_path / "c", 10_000)
    _, sha = blob(1)
    with pytest.raises(IntegrityError) as err:
        cache.path_for(sha, writer(b"tampered bytes"))
    assert "sha256" in err.value.reason
    assert list(cache.root.iterdir()) == []  # no file, no temp left behind


def test_fetch_failure_leaves_nothing(tmp_path: Path) -> None:
    cache = ModelFileCache(tmp_path / "c", 10_000)
    _, sha = blob(1)

    def broken(dest: Path) -> None:
        dest.write_bytes(b"partial")
        raise ConnectionError("network went away")

    with pytest.raises(ConnectionError):
        cache.path_for(sha, broken)
    assert list(cache.root.iterdir()) == []


@pytest.mark.parametrize("bad", ["", "abc", "../" + "a" * 61, "g" * 64, "a" * 65])
def test_sha_must_be_64_hex(tmp_path: Path, bad: str) -> None:
    cache = ModelFileCache(tmp_path / "c", 10_000)
    with pytest.raises(ValueError, match="64 hex"):
        cache.path_for(bad, writer(b""))


def test_concurrent_calls_for_one_sha_fetch_once(tmp_path: Path) -> None:
    cache = ModelFileCache(tmp_path / "c", 10_000)
    data, sha = blob(5)
    calls: list[int] = []

    def slow(dest: Path) -> None:
        calls.append(1)
        time.sleep(0.05)
        dest.write_bytes(data)

    results: list[Path] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        results.append(cache.path_for(sha, slow))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 8 and len(set(results)) == 1
    assert results[0].read_bytes() == data


def test_two_caches_on_one_folder_share_files(tmp_path: Path) -> None:
    """Two processes' caches over one folder: the second finds the first's file."""
    first = ModelFileCache(tmp_path / "c", 10_000)
    second = ModelFileCache(tmp_path / "c", 10_000)
    data, sha = blob(9)
    first.path_for(sha, writer(data))
    calls: list[int] = []
    assert second.path_for(sha, writer(data, calls)).read_bytes() == data
    assert calls == []


def test_a_model_cannot_read_another_cached_model_as_external_data(tmp_path: Path) -> None:
    """Each model has its own folder: external data naming a neighbour's file (as the
    flat layout once allowed) finds nothing, and the reason names no internal path."""
    import hashlib

    import numpy as np

    from shared.inference.inspect import inspect_model
    from shared.public_text import without_paths
    from shared.registry.errors import ModelValidationError
    from tests.support.models import write_external

    cache = ModelFileCache(tmp_path / "cache", 10**9)
    victim = np.array([1.5, -0.5], np.float32).tobytes()
    victim_sha = hashlib.sha256(victim).hexdigest()
    cache.path_for(victim_sha, lambda dest: dest.write_bytes(victim))
    for location in (f"{victim_sha}.onnx", f"{victim_sha}/model.onnx"):
        source = tmp_path / f"src-{location.replace('/', '-')}"
        source.mkdir()
        data = write_external(source, location).read_bytes()
        path = cache.path_for(hashlib.sha256(data).hexdigest(), lambda d, b=data: d.write_bytes(b))
        assert path.parent.name == hashlib.sha256(data).hexdigest()
        with pytest.raises(ModelValidationError) as err:
            inspect_model(path)
        assert str(tmp_path) not in without_paths(err.value.reason)


def test_a_cached_file_damaged_on_disk_is_fetched_again(tmp_path: Path) -> None:
    import hashlib

    data = b"model bytes " * 100
    sha = hashlib.sha256(data).hexdigest()
    cache = ModelFileCache(tmp_path / "cache", 10**6)
    path = cache.path_for(sha, lambda dest: dest.write_bytes(data))
    assert cache.fetches == 1
    restarted = ModelFileCache(tmp_path / "cache", 10**6)  # a new process, same folder
    path.write_bytes(b"X" + data[1:])  # one flipped byte, same size
    again = restarted.path_for(sha, lambda dest: dest.write_bytes(data))
    assert again.read_bytes() == data and restarted.fetches == 1
    assert restarted.path_for(sha, lambda dest: None) == again  # verified: a plain hit now
    assert restarted.fetches == 1
