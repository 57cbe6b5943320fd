"""Random metadata filters for hypothesis: every operator, nested `$and`/`$or`, and
several keys in one object (and-ed), built from the caller's own value strategies."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: The property tests' settings: bounded and derandomized in `make test`; `make fuzz`
#: sets FUZZ_EXAMPLES and lets hypothesis pick new inputs each run.
PROPERTY = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")),
    deadline=None,
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several clauses as keys of one object (and-ed), where their keys differ."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            merged.setdefault(key, value)
    return merged


def random_filters(
    field: st.SearchStrategy[str],
    scalars: st.SearchStrategy[Any],
    numbers: st.SearchStrategy[Any],
    in_values: st.SearchStrategy[Any],
    *,
    max_in: int,
    max_leaves: int,
) -> st.SearchStrategy[dict[str, Any]]:
    """Filters over `field` names: `$eq`/`$ne`/bare values of `scalars`, ranges over
    `numbers`, `$in`/`$nin` lists of up to `max_in` `in_values`, `$exists`."""

    def op(names: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.builds(lambda k, o, v: {k: {o: v}}, field, st.sampled_from(names), values)

    leaf = st.one_of(
        st.builds(lambda k, v: {k: v}, field, scalars),
        op(["$eq", "$ne"], scalars),
        op(["$gt", "$gte", "$lt", "$lte"], numbers),
        op(["$in", "$nin"], st.lists(in_values, max_size=max_in)),
        st.builds(lambda k, v: {k: {"$exists": v}}, field, st.booleans()),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"$and": cs}),
            st.lists(inner, min_size=1, max_size=3).map(lambda cs: {"$or": cs}),
            st.lists(inner, max_size=3).map(_merge),
        ),
        max_leaves=max_leaves,
    )
