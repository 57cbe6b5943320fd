"""Streaming model storage on Azurite: hashes, names, archive copies, limits."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from shared.storage.blob_store import UploadTooLargeError, archive_name
from shared.storage.names import InvalidNameError, model_name_from_blob, validate_model_name


def test_upload_streams_and_hashes_what_it_sent(container, tmp_path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 123)  # more than two 4 MiB blocks
    up = container.upload("big.onnx", io.BytesIO(data))
    assert up.size == len(data) and up.sha256 == hashlib.sha256(data).hexdigest()
    size, sha = container.download_to("big.onnx", tmp_path / "out.onnx")
    assert (size, sha) == (len(data), up.sha256)
    assert (tmp_path / "out.onnx").read_bytes() == data
    assert container.hash_pinned("big.onnx").sha256 == up.sha256


def test_upload_over_the_limit_is_refused(container) -> None:
    with pytest.raises(UploadTooLargeError, match="limit of 1024 bytes"):
        container.upload("x.onnx", io.BytesIO(b"a" * 5000), max_bytes=1024)


def test_archive_copy_is_immutable_under_a_content_name(container, blob_service) -> None:
    from shared.storage.blob_store import BlobModelStore

    versions = BlobModelStore(blob_service, container.container + "-v")  # made on first write
    up = container.upload("m.onnx", io.BytesIO(b"version one"))
    archived = versions.archive(up, "m")
    assert archived.name == f"m/{up.sha256}.onnx" and archived.container == versions.container
    container.upload("m.onnx", io.BytesIO(b"version two"))  # overwrite the upload name
    assert versions.hash_pinned(archived.name).sha256 == up.sha256
    assert not container.exists(archived.name)


@pytest.mark.parametrize(
    "bad", ["", "../etc", "a/b", "..", ".hidden", "x" * 200, "sp ace", "a..b", "ü"]
)
def test_invalid_model_names_are_refused_before_any_call(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_model_name(bad)


def test_blob_names_map_to_model_names() -> None:
    assert model_name_from_blob("iris-v2.onnx") == "iris-v2"
    for bad in ("x/" + "a" * 64 + ".onnx", "a/b.onnx", "iris.tokenizer.json", "../x.onnx"):
        with pytest.raises(InvalidNameError):
            model_name_from_blob(bad)
    with pytest.raises(ValueError, match="sha256"):
        archive_name("m", "not-a-hash")


def test_store_refuses_path_like_blob_names(container) -> None:
    with pytest.raises(InvalidNameError):
        container.upload("../escape.onnx", io.BytesIO(b"x"))
    with pytest.raises(InvalidNameError):
        container.exists("dir/inner.onnx")


def test_upload_url_writes_one_blob_and_nothing_else(container) -> None:
    import urllib.error
    import urllib.request
    from datetime import timedelta

    up = container.upload_url("direct.onnx", timedelta(minutes=5))
    data = os.urandom(300_000)
    put = urllib.request.Request(
        up.url, data=data, method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
    )
    with urllib.request.urlopen(put) as reply:
        assert reply.status == 201
    assert container.hash_pinned("direct.onnx").sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(urllib.error.HTTPError) as read:  # write-only: no read back
        urllib.request.urlopen(up.url)
    assert read.value.code == 403
    other = up.url.replace("/direct.onnx?", "/other.onnx?")  # signed for one blob only
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(
            urllib.request.Request(
                other, data=b"x", method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
            )
        )
    assert wrong.value.code == 403


def test_upload_url_needs_an_account_key(container) -> None:
    from datetime import timedelta

    from azure.storage.blob import BlobServiceClient

    from shared.storage.blob_store import BlobModelStore, UploadUrlUnavailableError

    anonymous = BlobModelStore(BlobServiceClient(container.service.url), container.container)
    with pytest.raises(UploadUrlUnavailableError, match="neither an account key nor a token"):
        anonymous.upload_url("x.onnx", timedelta(minutes=5))
    with pytest.raises(InvalidNameError):
        container.upload_url("../x.onnx", timedelta(minutes=5))
