"""A loopback stand-in for Application Insights' ingestion endpoint.

The Azure Monitor exporter posts envelopes to `<IngestionEndpoint>/v2.1/track`: a JSON
array or JSON lines, gzip-compressed or not (both are read). This server keeps every
envelope so a test can assert what Application Insights would receive.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def decode_track_body(body: bytes, encoding: str = "") -> list[dict[str, Any]]:
    """The envelopes of one POST: gunzip if needed, then a JSON array or JSON lines."""
    if encoding.lower() == "gzip" or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode("utf-8").strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Ingestion:
    """What was posted, by path."""

    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.formats: Counter[str] = Counter()  # "gzip array", "plain lines", ...
        self.posts = 0
        self.lock = threading.Lock()

    def of_type(self, base_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.envelopes if e.get("data", {}).get("baseType") == base_type]

    def data(self, base_type: str) -> list[dict[str, Any]]:
        """(envelope, baseData) pairs flattened: each baseData with the envelope's tags."""
        return [
            {**e["data"]["baseData"], "_tags": e.get("tags", {})} for e in self.of_type(base_type)
        ]

    def metric_names(self) -> set[str]:
        names = set()
        for item in self.data("MetricData"):
            names.update(m["name"] for m in item.get("metrics", []))
        return names


def _handler(sink: Ingestion) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            accepted = 0
            if self.path.rstrip("/").endswith("/v2.1/track"):
                encoding = self.headers.get("Content-Encoding", "")
                items = decode_track_body(body, encoding)
                accepted = len(items)
                zipped = encoding.lower() == "gzip" or body[:2] == b"\x1f\x8b"
                text = gzip.decompress(body) if zipped else body
                shape = "array" if text.lstrip()[:1] == b"[" else "lines"
                with sink.lock:
                    sink.posts += 1
                    sink.formats[f"{'gzip' if zipped else 'plain'} {shape}"] += 1
                    sink.envelopes.extend(items)
            reply = json.dumps(
                {"itemsReceived": accepted, "itemsAccepted": accepted, "errors": []}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def ingestion_server() -> Iterator[tuple[str, Ingestion]]:
    """(connection string pointing at the server, what it received)."""
    sink = Ingestion()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(sink))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    connection = (
        "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        f"IngestionEndpoint={base};LiveEndpoint={base}"
    )
    try:
        yield connection, sink
    finally:
        server.shutdown()
        server.server_close()
