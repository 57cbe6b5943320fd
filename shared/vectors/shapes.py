"""POST /api/vectors/{op} and POST /api/vectors/aggregate/{op}."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.http.shapes import MatrixJson, OutputFormat, Strict, VectorOrMatrixJson

VectorOp = Literal[
    "dot",
    "cosine",
    "euclidean",
    "add",
    "subtract",
    "scale",
    "norm",
    "normalize",
    "lerp",
    "softmax",
    "argmax",
]
AggregateOp = Literal["centroid", "mean_variance", "geometric_median"]

VECTOR_OPS: tuple[str, ...] = VectorOp.__args__  # type: ignore[attr-defined]
AGGREGATE_OPS: tuple[str, ...] = AggregateOp.__args__  # type: ignore[attr-defined]


class VectorOpRequest(Strict):
    a: VectorOrMatrixJson = Field(description="First operand: a vector or a matrix (rows).")
    b: VectorOrMatrixJson | None = Field(
        default=None, description="Second operand, for dot, cosine, euclidean, add, subtract, lerp."
    )
    scalar: float | None = Field(default=None, allow_inf_nan=False, description="Factor for scale.")
    t: float | None = Field(
        default=None, allow_inf_nan=False, description="Interpolation weight for lerp."
    )
    mode: Literal["pairwise", "cross"] = Field(
        default="pairwise",
        description="Two matrices: row i with row i (pairwise) or every pair (cross).",
    )
    format: OutputFormat = Field(default="json", description="b64 returns vectors as base64.")


class VectorOpResponse(BaseModel):
    op: str
    result: Any = Field(description="A number, a vector, a list of numbers or a matrix.")


class AggregateRequest(Strict):
    vectors: MatrixJson = Field(description="The vectors to aggregate, one per row.")
    format: OutputFormat = "json"


class AggregateResponse(BaseModel):
    op: str
    count: int
    result: Any = Field(description="centroid/geometric_median: a vector; mean_variance: object.")
