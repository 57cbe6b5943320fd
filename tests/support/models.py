"""Small real ONNX files for the model tests: skl2onnx estimators and onnx.helper graphs."""

from __future__ import annotations

import hashlib
import warnings
from functools import cache
from pathlib import Path

import numpy as np


@cache
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


@cache
def _classifier_bytes() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    x, y = iris()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: accuracy is not the point
        clf.fit(x, y)
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    return onx.SerializeToString()


@cache
def _logistic_bytes() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    clf = LogisticRegression(max_iter=500).fit(x, y)
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    return onx.SerializeToString()


@cache
def _regressor_bytes() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    x, _ = iris()
    reg = LinearRegression().fit(x[:, :3], x[:, 3])
    return to_onnx(reg, x[:1, :3], target_opset=17).SerializeToString()


def write_classifier(folder: Path, name: str = "iris.onnx") -> Path:
    """MLPClassifier on iris (weights as initializers): X [N, 4] FP32 -> label [N] INT64,
    probabilities [N, 3] FP32."""
    path = folder / name
    path.write_bytes(_classifier_bytes())
    return path


def write_logistic(folder: Path, name: str = "logistic.onnx") -> Path:
    """LogisticRegression on iris (an ai.onnx.ml LinearClassifier node, no initializers)."""
    path = folder / name
    path.write_bytes(_logistic_bytes())
    return path


def write_regressor(folder: Path, name: str = "reg.onnx") -> Path:
    """LinearRegression on three iris features: X [N, 3] FP32 -> variable [N, 1] FP32."""
    path = folder / name
    path.write_bytes(_regressor_bytes())
    return path


def write_mixed(folder: Path, name: str = "mixed.onnx") -> Path:
    """A graph with a symbolic batch dim and INT64 / FP16 / BOOL inputs.

    ids [batch, 3] INT64, half [batch, 2] FP16, mask [batch] BOOL ->
    ids_plus [batch, 3] INT64 (ids + 1), half_twice [batch, 2] FP16, mask_not [batch] BOOL.
    """
    import onnx
    from onnx import TensorProto, helper

    one = helper.make_tensor("one", TensorProto.INT64, [], [1])
    two = helper.make_tensor(
        "two", TensorProto.FLOAT16, [], np.array([2], np.float16).tobytes(), True
    )
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["ids", "one"], ["ids_plus"]),
            helper.make_node("Mul", ["half", "two"], ["half_twice"]),
            helper.make_node("Not", ["mask"], ["mask_not"]),
        ],
        "mixed",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 3]),
            helper.make_tensor_value_info("half", TensorProto.FLOAT16, ["batch", 2]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("ids_plus", TensorProto.INT64, ["batch", 3]),
            helper.make_tensor_value_info("half_twice", TensorProto.FLOAT16, ["batch", 2]),
            helper.make_tensor_value_info("mask_not", TensorProto.BOOL, ["batch"]),
        ],
        initializer=[one, two],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = folder / name
    onnx.save(model, str(path))
    return path


def write_external(folder: Path, location: str, name: str = "ext.onnx") -> Path:
    """A one-initializer model whose weight claims to live in external file ``location``."""
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2], [0.0, 0.0])
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "8")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def save_graph(graph: object, path: Path, opset: int = 13) -> Path:
    """``graph`` (an onnx GraphProto) as a checked model file at ``path``."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
