"""Property-based fuzzing of the three parsers that take raw outside input.

- vector codecs (`shared.vectors.codec`): any JSON value or bytes either decodes to a
  finite float32 array of the stated shape or raises the codec's own `VectorError`
  whose message starts with the field; encode -> decode is the identity.
- queue messages (`shared.jobs.messages.parse_message`): any body parses or raises
  `MalformedMessageError` with a reason, never another exception.
- route matcher (`devhost.route_templates`): any path never raises, a match fills its template
  back to the path, and parameters put into a template come back out.

Bounded and derandomized in `make test`; `make fuzz` sets FUZZ_EXAMPLES and lets
hypothesis pick new inputs each run.
"""

from __future__ import annotations

import base64
import json
import os
import re
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from devhost.route_templates import Router, RouteTemplate, compile_route
from shared.jobs.kinds import KINDS
from shared.jobs.messages import JobMessage, MalformedMessageError, parse_message
from shared.vectors import codec
from shared.vectors.errors import VectorError
from shared.vectors.pool import BufferPool

FUZZING = "FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not FUZZING,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
MAX_DIM, MAX_ROWS = 64, 16

# -- strategies -------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([3.5e38, -3.5e38, 1e-45, 10**400]),  # beyond float32; beyond float
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=40,
)
number_lists = st.lists(numbers, max_size=MAX_DIM + 4)
b64_texts = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=MAX_DIM * 4 + 8).map(lambda b: base64.b64encode(b).decode()),
)
vector_inputs = st.one_of(
    json_values,
    number_lists,
    st.binary(max_size=MAX_DIM * 4 + 8),
    st.builds(lambda t: {"b64": t}, b64_texts),
    st.fixed_dictionaries({"b64": b64_texts, "shape": json_values}),
)
shapes = st.one_of(
    st.lists(st.integers(min_value=-2, max_value=MAX_ROWS + 2), min_size=2, max_size=2),
    json_values,
)
matrix_inputs = st.one_of(
    json_values,
    st.lists(number_lists, max_size=MAX_ROWS + 2),
    st.lists(st.lists(numbers, min_size=3, max_size=3), min_size=1, max_size=MAX_ROWS + 2),
    st.builds(lambda t, s: {"b64": t, "shape": s}, b64_texts, shapes),
    st.builds(
        lambda rows, dim, extra: {
            "b64": base64.b64encode(
                np.ones(rows * dim + 1, dtype="<f4").tobytes()[: max(0, rows * dim * 4 + extra)]
            ).decode(),
            "shape": [rows, dim],
        },
        st.integers(0, MAX_ROWS + 1),
        st.integers(0, MAX_DIM + 1),
        st.integers(-3, 3),
    ),
)
finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def _field_named(exc: VectorError, field: str) -> bool:
    return exc.field.startswith(field) and exc.message.startswith(exc.field) and exc.reason


# -- vector codecs ----------------------------------------------------------------------


@FUZZ
@given(value=vector_inputs, pooled=st.booleans())
def test_any_vector_input_decodes_or_names_the_field(value: object, pooled: bool) -> None:
    pool = BufferPool() if pooled else None
    try:
        arr = codec.decode_vector(value, "q", max_dim=MAX_DIM, pool=pool)
    except VectorError as exc:
        assert _field_named(exc, "q"), exc.message
        return
    assert arr.dtype == np.float32 and arr.ndim == 1 and 1 <= arr.shape[0] <= MAX_DIM
    assert np.isfinite(arr).all()
    if isinstance(value, list):  # a number list decodes to those numbers, in order
        assert arr.shape[0] == len(value)
        assert np.array_equal(arr, np.array(value, dtype=np.float64).astype(np.float32))
    elif isinstance(value, bytes):
        assert np.array_equal(arr, np.frombuffer(value, dtype="<f4"))


@FUZZ
@given(value=matrix_inputs, pooled=st.booleans())
def test_any_matrix_input_decodes_or_names_the_field(value: object, pooled: bool) -> None:
    pool = BufferPool() if pooled else None
    try:
        arr = codec.decode_matrix(value, "m", max_dim=MAX_DIM, max_rows=MAX_ROWS, pool=pool)
    except VectorError as exc:
        assert _field_named(exc, "m"), exc.message
        return
    assert arr.dtype == np.float32 and arr.ndim == 2 and np.isfinite(arr).all()
    rows, dim = arr.shape
    assert 1 <= rows <= MAX_ROWS and 1 <= dim <= MAX_DIM
    if isinstance(value, dict):  # the stated shape, exactly
        assert [rows, dim] == value["shape"]
    else:
        assert isinstance(value, list) and rows == len(value) and dim == len(value[0])


@FUZZ
@given(
    values=st.lists(finite_f32, min_size=1, max_size=MAX_DIM),
    fmt=st.sampled_from(["json", "b64"]),
)
def test_a_vector_round_trips_bit_for_bit(values: list[float], fmt: str) -> None:
    vec = np.array(values, dtype=np.float32)
    wire = json.loads(json.dumps(codec.encode_vector(vec, fmt)))  # through real JSON text
    back = codec.decode_vector(wire, "v", max_dim=MAX_DIM)
    assert back.dtype == np.float32 and back.tobytes() == vec.tobytes()


@FUZZ
@given(
    rows=st.integers(1, MAX_ROWS),
    dim=st.integers(1, MAX_DIM),
    fmt=st.sampled_from(["json", "b64"]),
    data=st.data(),
)
def test_a_matrix_round_trips_bit_for_bit(rows: int, dim: int, fmt: str, data) -> None:
    flat = data.draw(st.lists(finite_f32, min_size=rows * dim, max_size=rows * dim))
    mat = np.array(flat, dtype=np.float32).reshape(rows, dim)
    wire = json.loads(json.dumps(codec.encode_matrix(mat, fmt)))
    back = codec.decode_matrix(wire, "m", max_dim=MAX_DIM, max_rows=MAX_ROWS)
    assert back.shape == (rows, dim) and back.tobytes() == mat.tobytes()


@FUZZ
@given(raw=st.binary(min_size=1, max_size=MAX_DIM * 4))
def test_raw_bytes_not_a_multiple_of_4_always_say_so(raw: bytes) -> None:
    assume(len(raw) % 4)
    with pytest.raises(VectorError, match=r"^q: byte length \d+ is not a multiple of 4"):
        codec.decode_vector({"b64": base64.b64encode(raw).decode()}, "q", max_dim=MAX_DIM)


# -- queue messages ---------------------------------------------------------------------

message_fields = st.fixed_dictionaries(
    {},
    optional={
        "job_id": st.one_of(st.text(max_size=70), json_values, st.just("job-1")),
        "kind": st.one_of(st.sampled_from([*KINDS, "bake", ""]), json_values),
        "schema_version": st.one_of(st.sampled_from([1, 2, 0, True, 1.0, "1"]), json_values),
        "payload": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "model_id": st.one_of(st.text(max_size=8), json_values),
                    "version_id": st.one_of(st.text(max_size=8), json_values),
                    "model": st.text(max_size=8),
                    "items": json_values,
                    "blob": st.text(max_size=12),
                    "texts": json_values,
                    "entity_ids": json_values,
                    "$blob": st.text(max_size=8),
                },
            ),
        ),
        "extra": json_values,
    },
)
message_bodies = st.one_of(
    message_fields.map(json.dumps),
    message_fields.map(lambda d: json.dumps(d).encode()),
    json_values.map(json.dumps),
    st.binary(max_size=80),
    st.text(max_size=80),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
)


GOOD = {"job_id": "a", "kind": "model", "payload": {"version_id": "m"}}


def _missing_blob(reference: dict) -> object:
    raise LookupError(f"the payload blob {reference['$blob']!r} does not exist")


@FUZZ
@given(body=message_bodies, resolve=st.booleans())
@example(body="[" * 5000 + "]" * 5000, resolve=False)  # once a RecursionError
@example(body='{"job_id": "\\ud800", "kind": "bake"}', resolve=False)  # id unstorable
@example(body=json.dumps({**GOOD, "schema_version": True}), resolve=False)  # True == 1
def test_any_queue_message_parses_or_is_malformed_with_a_reason(
    body: str | bytes, resolve: bool
) -> None:
    try:
        message, payload = parse_message(body, _missing_blob if resolve else None)
    except MalformedMessageError as exc:
        assert exc.reason and str(exc) == exc.reason
        assert exc.job_id is None or re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", exc.job_id)
        assert exc.kind is None or isinstance(exc.kind, str)
        return
    assert message.kind in KINDS and message.schema_version == 1
    assert json.loads(body).get("schema_version", 1) is not True
    assert type(payload).__name__.endswith("Payload")
    assert parse_message(message.to_json())[0] == message  # what parsed re-serialises


@FUZZ
@given(
    job_id=st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True),
    version_id=st.text(min_size=1, max_size=256),
)
def test_a_valid_message_round_trips(job_id: str, version_id: str) -> None:
    msg = JobMessage(job_id=job_id, kind="model", payload={"version_id": version_id})
    again, payload = parse_message(msg.to_json().encode())
    assert again == msg and payload.version_id == version_id


# -- route matcher ----------------------------------------------------------------------

APP_TEMPLATES = [
    "vectors/{op}",
    "vectors/aggregate/{op}",
    "jobs",
    "jobs/{job_id}",
    "jobs/{job_id}/retry",
    "models/{version_id}",
    "embeddings/{entity_id}",
    "v2/models/{name}/versions/{version}/infer",
    "analytics/models/{name}",
]
EXTRA_TEMPLATES = [
    "items/{id:int}",
    "items/{id:long}/x",
    "files/{name}.{ext}",
    "opt/{id?}",
    "deflt/{id=5}",
    "tree/{*rest}",
    "c/{id:min(3)}",
    "c/{id:range(1,9)}/r",
    "a/{v:alpha}",
    "g/{v:guid}",
    "b/{v:bool}",
]
TEMPLATES = APP_TEMPLATES + EXTRA_TEMPLATES
_TOKEN = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"^\*?([^:=?]+)")


def _router() -> Router:
    router = Router()
    for template in TEMPLATES:
        router.add(template, template, ["GET"])
    return router


ROUTER = _router()
segment_chars = st.characters(blacklist_characters="/", blacklist_categories=("Cs",))
paths = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.one_of(
            st.sampled_from(["jobs", "v2", "models", "items", "tree", "c", "files", "x", ""]),
            st.text(segment_chars, max_size=12),
            st.integers().map(str),
            st.just("9" * 5000),
        ),
        max_size=7,
    ).map("/".join),
)


def fill(template: str, params: dict[str, str]) -> str:
    """The path a template gives with these parameter values (optional ones may be absent)."""

    def value(m: re.Match[str]) -> str:
        name = _NAME.match(m.group(1)).group(1).strip()  # type: ignore[union-attr]
        return params.get(name, "")

    return _TOKEN.sub(value, template).strip("/")


@FUZZ
@given(path=paths, method=st.sampled_from(["GET", "POST"]))
@example(path="items/" + "9" * 5000, method="GET")  # once a ValueError from int()
def test_random_paths_never_raise_and_a_match_fills_its_template(path: str, method: str) -> None:
    found = ROUTER.match(path, method)
    if found is None or not hasattr(found, "route"):
        return
    template: RouteTemplate = found.route.template
    assert fill(template.template, found.params).lower() == path.strip("/").lower()


def _param_value(name: str, spec: str) -> st.SearchStrategy[str]:
    plain = st.text(segment_chars, min_size=1, max_size=20)
    if ":int" in spec:
        return st.integers(-(2**31), 2**31 - 1).map(str)
    if ":long" in spec:
        return st.integers(-(2**63), 2**63 - 1).map(str)
    if ":min(3)" in spec:
        return st.integers(3, 10**18).map(str)
    if ":range(1,9)" in spec:
        return st.integers(1, 9).map(str)
    if ":alpha" in spec:
        return st.text(string.ascii_letters, min_size=1, max_size=10)
    if ":guid" in spec:
        return st.uuids().map(str)
    if ":bool" in spec:
        return st.sampled_from(["true", "False", "TRUE"])
    if spec.startswith("*"):  # catch-all: slashes inside, none at the ends
        return st.lists(plain, min_size=1, max_size=4).map("/".join)
    return plain


@FUZZ
@given(template=st.sampled_from(TEMPLATES), data=st.data())
def test_parameters_put_into_a_template_come_back_out(template: str, data) -> None:
    compiled = compile_route(template)
    params: dict[str, str] = {}
    for token in _TOKEN.findall(template):
        name = _NAME.match(token).group(1).strip()  # type: ignore[union-attr]
        if token.endswith("?") and data.draw(st.booleans()):
            continue  # an optional parameter left out
        value = data.draw(_param_value(name, token))
        if template.startswith("files/") and name == "ext":
            assume("." not in value)  # "{name}.{ext}": the last dot splits, as in ASP.NET
        params[name] = value
    path = fill(template, params)
    expected = dict(params)
    if "{id=5}" in template and "id" not in params:
        expected["id"] = "5"
    assert compiled.match(path) == expected
    assert compiled.match("/" + path + "/") == expected  # slashes at the ends do not count
