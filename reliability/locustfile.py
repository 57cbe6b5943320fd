"""The locust clients: one class per hot route, each sending requests with no pause.

Run by `reliability.load` in a locust subprocess (locust patches the standard library with
gevent on import, so it never runs inside the runner or pytest). Targets come from
environment variables the runner sets.
"""

from __future__ import annotations

import json
import os
import random

from locust import FastHttpUser, constant, task

KEY = os.environ["RELIABILITY_KEY"]
DIM = int(os.environ["RELIABILITY_DIM"])
SEARCH_MODEL = os.environ["RELIABILITY_SEARCH_MODEL"]
SEARCH_TYPE = os.environ["RELIABILITY_SEARCH_TYPE"]
INFER_MODEL = os.environ["RELIABILITY_INFER_MODEL"]
INFER_INPUT = os.environ["RELIABILITY_INFER_INPUT"]
INFER_FEATURES = int(os.environ["RELIABILITY_INFER_FEATURES"])
HEADERS = {"x-functions-key": KEY, "Content-Type": "application/json"}
BODIES = 16  # distinct bodies per route and client, built once


def _vector(rng: random.Random, dim: int) -> list[float]:
    return [round(rng.gauss(0.0, 1.0), 5) for _ in range(dim)]


class _Client(FastHttpUser):
    """One route per client class, so a slow route does not set the pace of the others;
    locust spreads the users evenly over the three classes."""

    abstract = True
    wait_time = constant(0)
    path = ""
    name: str | None = None

    def body(self, rng: random.Random) -> dict:
        raise NotImplementedError

    def on_start(self) -> None:
        rng = random.Random()
        self.bodies = [json.dumps(self.body(rng)) for _ in range(BODIES)]

    @task
    def post(self) -> None:
        self.client.post(
            self.path, data=random.choice(self.bodies), headers=HEADERS, name=self.name
        )


class CosineClient(_Client):
    path = "/api/vectors/cosine"

    def body(self, rng: random.Random) -> dict:
        return {"a": _vector(rng, DIM), "b": [_vector(rng, DIM) for _ in range(8)]}


class SearchClient(_Client):
    path = "/api/search"

    def body(self, rng: random.Random) -> dict:
        return {
            "vector": _vector(rng, DIM),
            "top_k": 10,
            "metric": "cosine",
            "model_id": SEARCH_MODEL,
            "embedding_type": SEARCH_TYPE,
        }


class InferClient(_Client):
    path = f"/api/v2/models/{INFER_MODEL}/infer"
    name = "/api/v2/models/{name}/infer"

    def body(self, rng: random.Random) -> dict:
        data = [abs(x) for x in _vector(rng, 8 * INFER_FEATURES)]
        tensor = {"name": INFER_INPUT, "shape": [8, INFER_FEATURES], "datatype": "FP32"}
        return {"inputs": [{**tensor, "data": data}]}
