"""Reading infra/*.bicep with pycep (checkov's own Bicep parser): no Bicep compiler
installs here, so the tests read the parsed files.

pycep's first parser on a machine builds lark's LALR tables for the Bicep grammar (about
20 s of CPU) and caches them under the temp folder (checkov's pycep uses the same cache
file); later parsers load them in about 0.5 s. So one parser serves the whole process,
and every test that parses Bicep, checkov's included, runs in the xdist group
`BICEP_GROUP`: one worker builds the tables once, instead of several at the same time."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

from shared.settings import ROOT

INFRA = ROOT / "infra"
BICEP_GROUP = "bicep-parser"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@cache
def parser() -> BicepParser:
    return BicepParser()


@cache
def parsed(path: Path) -> dict[str, Any]:
    return parser().parse(file_path=path)


def modules(path: Path) -> dict[str, dict[str, Any]]:
    return parsed(path).get("modules", {})


def registry_module(path: Path, avm_path: str) -> dict[str, Any]:
    """The one module in `path` that uses `avm/res/<avm_path>`: its params."""
    found = [
        m["config"]["params"]
        for m in modules(path).values()
        if m["type"] == "bicep_registry_alias" and m["detail"]["path"] == f"avm/res/{avm_path}"
    ]
    assert len(found) == 1, f"{path.name}: expected one avm/res/{avm_path} module, got {found}"
    return found[0]


def object_keys(value: Any) -> set[str]:
    """Keys of a Bicep object literal as pycep gives it (a dict)."""
    assert isinstance(value, dict), value
    return set(value)


def dotted(value: Any) -> Any:
    """A property access as text (`storage.outputs.resourceId`); anything else as is."""
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    return value


def allowed_values(path: Path, param: str) -> list[Any]:
    """The `@allowed([...])` list of a parameter (empty: none)."""
    decorators = parsed(path)["parameters"][param]["decorators"]
    return next((d["argument"] for d in decorators if d["type"] == "allowed"), [])


class Evaluator:
    """Evaluates the expressions of one parsed Bicep file for given parameter values, as
    ARM would: enough of the language to check what the file computes (the SQL SKU from
    its name) without a Bicep compiler.

    pycep gives a name and a string literal the same form (a Python str), so a str that
    is a parameter or variable of the file is read as that name, and any other str as
    text; `${...}` inside a str is interpolated. Anything this does not know (a function,
    an operator, a name with no value) raises rather than guessing."""

    def __init__(self, path: Path, params: dict[str, Any]) -> None:
        tree = parsed(path)
        self._params = tree.get("parameters", {})
        self._variables = tree.get("variables", {})
        self._values: dict[str, Any] = dict(params)

    def name(self, name: str) -> Any:
        """A parameter's value (given, else its default) or a variable's."""
        if name not in self._values:
            if name in self._params:
                default = self._params[name].get("default")
                if default is None:
                    raise KeyError(f"parameter {name} has no value")
                self._values[name] = self.value(default)
            else:
                self._values[name] = self.value(self._variables[name]["value"])
        return self._values[name]

    def value(self, node: Any) -> Any:
        if isinstance(node, str):
            if "${" in node:
                return self._interpolate(node)
            if node in self._params or node in self._variables:
                return self.name(node)
            return node
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if isinstance(node, dict):
            if set(node) == {"operator"}:
                return self._operator(node["operator"])
            if set(node) == {"function"}:
                return self._function(node["function"])
            return {key: self.value(item) for key, item in node.items()}
        return node

    def _interpolate(self, text: str) -> str:
        out, i = [], 0
        while (start := text.find("${", i)) != -1:
            out.append(text[i:start])
            depth, j, quoted = 1, start + 2, False
            while depth:
                ch = text[j]
                if ch == "'":
                    quoted = not quoted
                elif not quoted and ch == "{":
                    depth += 1
                elif not quoted and ch == "}":
                    depth -= 1
                j += 1
            inner = parser().parse(text=f"var x = {text[start + 2 : j - 1]}\n")
            out.append(_text(self.value(inner["variables"]["x"]["value"])))
            i = j
        out.append(text[i:])
        return "".join(out)

    def _operator(self, op: dict[str, Any]) -> Any:
        kind, operands = op["type"], list(op["operands"].values())
        if kind == "conditional":
            condition, when_true, when_false = operands
            return self.value(when_true if self.value(condition) else when_false)
        if kind == "minus":
            return -self.value(operands[0])
        if kind == "not":
            return not self.value(operands[0])
        if kind == "property_accessor":
            # pycep nests `a.b.c` as a.(b.c): the members are the right-hand chain.
            target, member = operands
            members = []
            while isinstance(member, dict) and member["operator"]["type"] == "property_accessor":
                inner = member["operator"]["operands"]
                members.append(inner["operand_1"])
                member = inner["operand_2"]
            found = self.value(target)
            for name in [*members, member]:
                found = found[name]
            return found
        a, b = (self.value(x) for x in operands)
        binary = {
            "index_accessor": lambda: a[b],
            "equals": lambda: a == b,
            "not_equals": lambda: a != b,
            "and": lambda: a and b,
            "or": lambda: a or b,
            "add": lambda: a + b,
            "substract": lambda: a - b,
            "multiply": lambda: a * b,
            "divide": lambda: int(a / b),  # integers only, truncated as ARM's div()
            "modulo": lambda: a - b * int(a / b),
            "greater_than": lambda: a > b,
            "greater_than_or_equals": lambda: a >= b,
            "less_than": lambda: a < b,
            "less_than_or_equals": lambda: a <= b,
        }
        if kind not in binary:
            raise NotImplementedError(f"Bicep operator {kind}")
        return binary[kind]()

    def _function(self, fn: dict[str, Any]) -> Any:
        kind = fn["type"]
        args = [self.value(a) for a in fn["parameters"].values()]
        functions = {
            "split": lambda s, sep: s.split(sep),
            "join": lambda items, sep: sep.join(items),
            "first": lambda items: items[0],
            "last": lambda items: items[-1],
            "length": len,
            "take": lambda items, n: items[: max(n, 0)],
            "skip": lambda items, n: items[max(n, 0) :],
            "contains": lambda container, item: item in container,
            "int": int,
            "string": _text,
            "max": max,
            "min": min,
            "pad_left": lambda s, n, ch=" ": _text(s).rjust(n, ch),
            "substring": lambda s, start, n=None: s[start:] if n is None else s[start : start + n],
            "replace": lambda s, old, new: s.replace(old, new),
            "to_lower": str.lower,
            "to_upper": str.upper,
        }
        if kind not in functions:
            raise NotImplementedError(f"Bicep function {kind}")
        return functions[kind](*args)


def _text(value: Any) -> str:
    """string() and interpolation: booleans as ARM writes them, everything else as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def role_assignments(path: Path) -> set[tuple[str, str, str]]:
    """Every role assignment a file makes, as (principal, scope, role definition GUID):
    the principal and scope as written (parameter and resource names), each role of a
    loop's array on its own. A condition (`if (!empty(...))`) does not change what is
    assigned when it holds, so it is read through."""
    tree = parsed(path)
    evaluate = Evaluator(path, {})
    found = set()
    for name, resource in tree.get("resources", {}).items():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config, loop = resource["config"], None
        while set(config) <= {"loop_type", "condition", "config"}:
            loop = loop or config.get("loop_type")
            config = config["config"]
        role = config["properties"]["roleDefinitionId"]["function"]["parameters"]
        role = role["resource_name_1"]
        if loop is not None and role == loop["detail"]["item_name"]:
            roles = evaluate.name(loop["detail"]["array_name"])
        else:
            roles = [evaluate.value(role)]
        principal = config["properties"]["principalId"]
        assert isinstance(principal, str), (name, principal)
        found |= {(principal, config["scope"], r) for r in roles}
    return found
