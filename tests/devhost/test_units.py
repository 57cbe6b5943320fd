"""Pure pieces of the local host: message encodings, keys, blob paths, binding expressions."""

from __future__ import annotations

import base64

import azure.functions as func
import pytest
from azure.storage.blob import BlobClient

from devhost.auth import KeyRing, presented_key
from devhost.bindings import blob_argument_kind, render_path
from devhost.blob_listener import parse_blob_path, sanitize_host_id
from devhost.loader import resolve_settings
from devhost.queue_listener import next_delay
from devhost.queue_messages import decode_body, encode_body, message_bodies


def test_message_encoding_none_passes_text_through() -> None:
    assert decode_body('{"a": 1}', "none") == b'{"a": 1}'
    assert encode_body('{"a": 1}', "none") == '{"a": 1}'
    assert encode_body(b"bytes", "none") == "bytes"
    assert decode_body("not base64!", "none") == b"not base64!"


def test_message_encoding_base64() -> None:
    text = base64.b64encode(b"\x00\xffhello").decode()
    assert decode_body(text, "base64") == b"\x00\xffhello"
    assert encode_body(b"\x00\xffhello", "base64") == text
    assert decode_body(encode_body("héllo", "base64"), "base64") == "héllo".encode()
    with pytest.raises(ValueError, match="base64"):
        decode_body("not base64!", "base64")


def test_queue_output_values() -> None:
    assert message_bodies("a") == [b"a"]
    assert message_bodies(["a", b"b", func.QueueMessage(body="c")]) == [b"a", b"b", b"c"]
    assert message_bodies(None) == []
    with pytest.raises(TypeError):
        message_bodies({"not": "supported"})


def test_key_ring_levels() -> None:
    keys = KeyRing.from_settings({"LOCAL_FUNCTION_KEYS": " one, two ,", "LOCAL_MASTER_KEY": "m"})
    assert keys.function_keys == ("one", "two") and not keys.generated
    assert keys.allows("ANONYMOUS", None)
    assert keys.allows("FUNCTION", "two") and keys.allows("FUNCTION", "m")
    assert not keys.allows("FUNCTION", "three") and not keys.allows("FUNCTION", None)
    assert keys.allows("ADMIN", "m") and not keys.allows("ADMIN", "one")


def test_key_ring_generates_a_key_when_none_is_set() -> None:
    keys = KeyRing.from_settings({})
    assert keys.generated and len(keys.function_keys[0]) >= 32
    assert keys.allows("function", keys.function_keys[0])
    assert not keys.allows("ADMIN", keys.function_keys[0])
    assert presented_key({"x-functions-key": "h"}, {"code": "q"}) == "h"
    assert presented_key({}, {"code": "q"}) == "q"


def test_blob_path_patterns() -> None:
    pattern = parse_blob_path("models/{name}.onnx")
    assert (pattern.container, pattern.prefix) == ("models", "")
    assert pattern.match("resnet.onnx") == {"name": "resnet"}
    assert pattern.match("dir/v1.2.onnx") == {"name": "dir/v1.2"}
    assert pattern.match("resnet.onnx.txt") is None
    nested = parse_blob_path("data/in/{year}/{file}")
    assert nested.prefix == "in/"
    assert nested.match("in/2024/a/b.csv") == {"year": "2024", "file": "a/b.csv"}
    assert nested.match("out/2024/a.csv") is None
    assert parse_blob_path("everything").match("any/blob") == {}
    with pytest.raises(ValueError):
        parse_blob_path("{container}/{name}")


def test_host_id_is_sanitised() -> None:
    assert sanitize_host_id("fixture_app") == "fixture-app"
    assert sanitize_host_id("My App!! v2") == "my-app-v2"
    assert len(sanitize_host_id("x" * 80)) == 32
    assert sanitize_host_id("__") == "localhost"


def test_binding_expressions() -> None:
    assert render_path("out/{Name}.copy", {"name": "a/b"}) == "out/a/b.copy"
    assert len(render_path("x/{rand-guid}", {})) == 38
    with pytest.raises(KeyError):
        render_path("out/{missing}", {})
    assert resolve_settings("%NS%-jobs", {"NS": "t1"}) == "t1-jobs"
    with pytest.raises(KeyError):
        resolve_settings("%NOPE%", {})


def test_blob_parameter_kinds() -> None:
    assert blob_argument_kind(func.InputStream) == "stream"
    assert blob_argument_kind(None) == "stream"
    assert blob_argument_kind(bytes) == "bytes"
    assert blob_argument_kind(str) == "str"
    assert blob_argument_kind(BlobClient) == "BlobClient"
    assert blob_argument_kind(BlobClient | None) == "BlobClient"
    assert blob_argument_kind("blob.BlobClient") == "BlobClient"  # e.g. the extension's type


def test_polling_backoff() -> None:
    delays = [0.1]
    for _ in range(6):
        delays.append(next_delay(delays[-1], 1.0))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
