"""The OpenAI embeddings API's base64 path vs the app's own text route, through the local
host: ``POST /api/v1/embeddings`` with ``encoding_format: base64`` (what the openai SDK
asks for by default) against ``POST /api/embeddings/text`` with ``format: b64``, the
same 32 texts of 128 tokens each on all-MiniLM-L6-v2 (int8), calls interleaved (ABBA)
so a noisy neighbour slows both alike. Goal: the OpenAI path costs at most 5% more.
"""

from __future__ import annotations

import base64
import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

TEXTS, TOKENS, ROUNDS, KEY = 32, 128, 8, "bench"
#: Words that are one token each in MiniLM's vocabulary, to build texts of exact length.
SINGLE_TOKEN_WORDS = (
    "the of and to in is was for on as with by he at from his an were are which "
    "this be has had one not but first new all two its after they have who her she time also into"
)


def _texts(tokenizer_path: Path) -> list[str]:
    """TEXTS distinct texts of exactly TOKENS tokens each, special tokens included."""
    from tokenizers import Tokenizer

    words = SINGLE_TOKEN_WORDS.split()
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    special = tokenizer.num_special_tokens_to_add(is_pair=False)
    texts = [
        " ".join(words[(i * 7 + j) % len(words)] for j in range(TOKENS - special))
        for i in range(TEXTS)
    ]
    counts = {len(tokenizer.encode(t).ids) for t in texts}
    assert counts == {TOKENS}, counts
    return texts


def _register(connection: str, port: int, model: Path, tokenizer: Path) -> None:
    from azure.storage.blob import BlobServiceClient

    models = BlobServiceClient.from_connection_string(connection).get_container_client("models")
    if not models.exists():
        models.create_container()
    models.upload_blob("minilm.tokenizer.json", tokenizer.read_bytes(), overwrite=True)
    models.upload_blob("minilm.onnx", model.read_bytes(), overwrite=True)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        conn.request("GET", "/api/models?name=minilm", headers={"x-functions-key": KEY})
        listed = json.loads(conn.getresponse().read())["models"]
        if listed and listed[0]["status"] in ("ready", "failed"):
            assert listed[0]["status"] == "ready", listed[0]
            return
        time.sleep(1)
    raise TimeoutError("minilm was not registered within 300 s")


def main() -> None:
    from devhost import azurite
    from devhost.launcher import launch_app
    from tests.support.pretrained import find_minilm

    found = find_minilm()
    if found is None:
        print("(MiniLM not installed: skipped)")
        return
    model, tokenizer = found
    texts = _texts(tokenizer)
    calls = {
        "v1/embeddings base64": (
            "/api/v1/embeddings",
            {"model": "minilm", "input": texts, "encoding_format": "base64"},
            {"Authorization": f"Bearer {KEY}"},
        ),
        "embeddings/text b64": (
            "/api/embeddings/text",
            {"model": "minilm", "texts": texts, "format": "b64"},
            {"x-functions-key": KEY},
        ),
    }
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        storage = azurite.start(tmp / "azurite")
        host = launch_app(tmp, storage.connection_string, key=KEY)
        try:
            _register(storage.connection_string, host.port, model, tokenizer)
            conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=300)

            def call(name: str) -> tuple[float, dict]:
                path, body, headers = calls[name]
                data = json.dumps(body).encode()
                start = time.perf_counter()
                conn.request(
                    "POST", path, body=data, headers={"Content-Type": "application/json", **headers}
                )
                resp = conn.getresponse()
                raw = resp.read()
                elapsed = time.perf_counter() - start
                assert resp.status == 200, raw[:300]
                return elapsed, json.loads(raw)

            names = list(calls)
            _, v1 = call(names[0])  # warm-up: loads the session and the tokenizer
            _, own = call(names[1])
            times: dict[str, list[float]] = {n: [] for n in names}
            for r in range(ROUNDS):
                order = names if r % 2 == 0 else names[::-1]  # ABBA: drift hits both alike
                for name in order:
                    times[name].append(call(name)[0] * 1000)
        finally:
            host.stop()
            storage.stop()

    a = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in v1["data"]])
    b = np.frombuffer(base64.b64decode(own["vectors"]["b64"]), "<f4").reshape(a.shape)
    cosine = float(np.einsum("ij,ij->i", a, b).min())
    print(f"\n{TEXTS} texts x {TOKENS} tokens, all-MiniLM-L6-v2 int8, {ROUNDS} interleaved rounds")
    print(f"{'route':<24}{'median ms':>12}{'best ms':>10}")
    for name in names:
        print(f"{name:<24}{statistics.median(times[name]):>12.1f}{min(times[name]):>10.1f}")
    ratio = statistics.median(times[names[0]]) / statistics.median(times[names[1]])
    best = min(times[names[0]]) / min(times[names[1]])
    pairs = statistics.median(x / y for x, y in zip(times[names[0]], times[names[1]], strict=True))
    print(
        f"ratio v1/text: {ratio:.3f}x of medians, {best:.3f}x of bests, {pairs:.3f}x median "
        f"of paired rounds (goal <= 1.05); usage.prompt_tokens {v1['usage']['prompt_tokens']}; "
        f"lowest cosine between the two: {cosine:.7f}"
    )


if __name__ == "__main__":
    main()
