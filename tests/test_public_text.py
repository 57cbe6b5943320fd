"""Error texts lose internal paths but keep URLs and file names."""

import pytest

from shared.public_text import without_paths


@pytest.mark.parametrize(
    ("raw", "public"),
    [
        (
            "Data of TensorProto (tensor name: w) should be stored in "
            "/tmp/hartonomous/model-cache/ab12/cd34.onnx, but it is not regular file.",
            "Data of TensorProto (tensor name: w) should be stored in cd34.onnx, but it is "
            "not regular file.",
        ),
        (
            "NotADirectoryError: [Errno 20] Not a directory: '/tmp/x/not-a-folder/data'",
            "NotADirectoryError: [Errno 20] Not a directory: 'data'",
        ),
        ("cannot write to /var/lib/app/", "cannot write to <folder>"),
        (
            "GET http://127.0.0.1:10000/devstoreaccount1/models/a.onnx failed",
            "GET http://127.0.0.1:10000/devstoreaccount1/models/a.onnx failed",
        ),
        (
            "input 'x' has shape [1, 4]; expected 2/3 of it",
            "input 'x' has shape [1, 4]; expected 2/3 of it",
        ),
        ("no path here", "no path here"),
    ],
)
def test_paths_are_cut_to_their_last_part(raw: str, public: str) -> None:
    assert without_paths(raw) == public
