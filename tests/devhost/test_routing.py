"""Route templates: constraints, optional and catch-all parameters, precedence, methods."""

from __future__ import annotations

import pytest

from devhost.route_templates import MethodNotAllowed, RouteMatch, Router, compile_route


def match(template: str, path: str) -> dict[str, str] | None:
    return compile_route(template).match(path)


def test_literal_and_parameter() -> None:
    assert match("health", "health") == {}
    assert match("health", "HEALTH") == {}  # literals are case-insensitive
    assert match("health", "health/") == {}
    assert match("health", "healthz") is None
    assert match("items/{id}", "items/abc") == {"id": "abc"}
    assert match("items/{id}", "items") is None
    assert match("items/{id}", "items/a/b") is None


@pytest.mark.parametrize(
    ("template", "good", "bad"),
    [
        ("{v:int}", ["0", "-7", "2147483647"], ["x", "1.5", "2147483648", ""]),
        ("{v:long}", ["9223372036854775807"], ["9223372036854775808", "a"]),
        ("{v:alpha}", ["abcXYZ"], ["abc1", "a-b"]),
        ("{v:bool}", ["true", "False"], ["yes", "1"]),
        ("{v:guid}", ["3f2504e0-4f89-11d3-9a0c-0305e82c3301"], ["not-a-guid"]),
        ("{v:float}", ["1.5", "-2"], ["nan", "x"]),
        ("{v:min(10)}", ["10", "11"], ["9"]),
        ("{v:range(1,3)}", ["1", "3"], ["0", "4"]),
        ("{v:length(2)}", ["ab"], ["a", "abc"]),
        ("{v:maxlength(3)}", ["abc"], ["abcd"]),
        ("{v:regex(^v\\d+$)}", ["v12"], ["x12"]),
        ("{v:int:min(5)}", ["5"], ["4", "x"]),
    ],
)
def test_constraints(template: str, good: list[str], bad: list[str]) -> None:
    route = compile_route("x/" + template)
    for value in good:
        assert route.match("x/" + value) == {"v": value}, value
    for value in bad:
        assert route.match("x/" + value) is None, value


def test_optional_default_and_catch_all() -> None:
    assert match("files/{name?}", "files") == {}
    assert match("files/{name?}", "files/a") == {"name": "a"}
    assert match("page/{n:int=1}", "page") == {"n": "1"}
    assert match("page/{n:int=1}", "page/3") == {"n": "3"}
    assert match("page/{n:int=1}", "page/x") is None
    assert match("blob/{*path}", "blob") == {}
    assert match("blob/{*path}", "blob/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert match("{*all}", "anything/at/all") == {"all": "anything/at/all"}
    assert match("f/{name}.{ext}", "f/archive.tar.gz") == {"name": "archive.tar", "ext": "gz"}


def test_bad_templates_are_rejected() -> None:
    with pytest.raises(ValueError, match="constraint"):
        compile_route("x/{id:nosuch}")
    with pytest.raises(ValueError, match="repeat"):
        compile_route("{a}/{A}")


def test_precedence_literal_beats_constrained_beats_plain_beats_catch_all() -> None:
    router = Router()
    for template in ("items/{*rest}", "items/{name}", "items/{id:int}", "items/latest"):
        router.add(template, template, ["GET"])

    def target(path: str) -> str:
        found = router.match(path, "GET")
        assert isinstance(found, RouteMatch), path
        return found.route.target

    assert target("items/latest") == "items/latest"
    assert target("items/7") == "items/{id:int}"
    assert target("items/abc") == "items/{name}"
    assert target("items/a/b") == "items/{*rest}"
    assert target("items") == "items/{*rest}"


def test_methods_404_and_405() -> None:
    router = Router()
    router.add("things/{id}", "read", ["GET"])
    router.add("things/{id:int}", "write", ["POST", "put"])
    router.add("any", "any")  # no methods listed: all of them

    found = router.match("things/5", "GET")  # the more specific route takes no GET
    assert isinstance(found, RouteMatch) and found.route.target == "read"
    found = router.match("things/5", "PUT")
    assert isinstance(found, RouteMatch) and found.route.target == "write"
    assert router.match("things/abc", "POST") == MethodNotAllowed(("GET",))
    assert router.match("nothing", "GET") is None
    assert isinstance(router.match("any", "PATCH"), RouteMatch)
