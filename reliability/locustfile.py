"""The locust clients: each picks one of the three hot routes per request, with no pause.

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


class HotRoutes(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        rng = random.Random()
        self.cosine = [
            json.dumps({"a": _vector(rng, DIM), "b": [_vector(rng, DIM) for _ in range(8)]})
            for _ in range(BODIES)
        ]
        self.search = [
            json.dumps(
                {
                    "vector": _vector(rng, DIM),
                    "top_k": 10,
                    "metric": "cosine",
                    "model_id": SEARCH_MODEL,
                    "embedding_type": SEARCH_TYPE,
                }
            )
            for _ in range(BODIES)
        ]
        self.infer = [
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": INFER_INPUT,
                            "shape": [8, INFER_FEATURES],
                            "datatype": "FP32",
                            "data": [abs(x) for x in _vector(rng, 8 * INFER_FEATURES)],
                        }
                    ]
                }
            )
            for _ in range(BODIES)
        ]

    @task
    def cosine_route(self) -> None:
        self.client.post("/api/vectors/cosine", data=random.choice(self.cosine), headers=HEADERS)

    @task
    def search_route(self) -> None:
        self.client.post("/api/search", data=random.choice(self.search), headers=HEADERS)

    @task
    def infer_route(self) -> None:
        self.client.post(
            f"/api/v2/models/{INFER_MODEL}/infer",
            data=random.choice(self.infer),
            headers=HEADERS,
            name="/api/v2/models/{name}/infer",
        )
