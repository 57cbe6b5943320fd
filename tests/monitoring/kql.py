"""A structural KQL check, as far as one can be made without Kusto's own parser (a .NET
library that does not install here): strings and comments lexed, brackets balanced,
statements split on `;` and stages on `|`, every stage starting with a tabular
operator, every source a known table or a `let` name, every function call a known
function. It catches typos and broken edits, not type errors."""

from __future__ import annotations

import re
from dataclasses import dataclass

TABLES = {
    "requests",
    "dependencies",
    "customMetrics",
    "exceptions",
    "traces",
    "customEvents",
    "performanceCounters",
    "InsightsMetrics",
    "Perf",
}
OPERATORS = {
    "where",
    "summarize",
    "extend",
    "project",
    "project-away",
    "project-rename",
    "order",
    "sort",
    "top",
    "take",
    "limit",
    "join",
    "union",
    "render",
    "make-series",
    "evaluate",
    "distinct",
    "count",
    "mv-expand",
    "parse",
    "as",
}
FUNCTIONS = {
    "ago", "avg", "avgif", "bin", "count", "countif", "dcount", "iff", "iif", "isempty",
    "isnotempty", "max", "maxif", "min", "minif", "now", "percentile", "percentiles",
    "real", "round", "strcat", "sum", "sumif", "todouble", "toint", "tolong", "toreal",
    "tostring", "datetime", "timespan", "coalesce", "case", "arg_max", "arg_min",
}  # fmt: skip
KEYWORDS = {"and", "or", "not", "in", "by", "asc", "desc", "on", "with", "let", "kind"}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


@dataclass(frozen=True)
class Token:
    kind: str  # str | word | num | sym
    text: str


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif c in "'\"":
            j = i + 1
            while j < len(text) and text[j] != c:
                if text[j] == "\n":
                    raise SyntaxError(f"string not closed on its line at {i}")
                j += 2 if text[j] == "\\" else 1
            if j >= len(text):
                raise SyntaxError(f"string not closed at {i}")
            tokens.append(Token("str", text[i + 1 : j]))
            i = j + 1
        elif c.isdigit():
            m = re.match(r"\d+(\.\d+)?([a-z]+)?", text[i:])
            assert m
            tokens.append(Token("num", m.group(0)))
            i += len(m.group(0))
        elif c.isalpha() or c == "_":
            m = _IDENT.match(text, i)
            assert m
            tokens.append(Token("word", m.group(0)))
            i = m.end()
        else:
            two = text[i : i + 2]
            if two in ("==", "!=", "<=", ">=", "=~", "!~"):
                tokens.append(Token("sym", two))
                i += 2
            elif c in "()[]{},;|=<>+-*/%.^!":
                tokens.append(Token("sym", c))
                i += 1
            else:
                raise SyntaxError(f"unexpected character {c!r} at {i}")
    return tokens


def _split(tokens: list[Token], sep: str) -> list[list[Token]]:
    """Split on a separator that is not inside brackets; check the brackets."""
    parts: list[list[Token]] = [[]]
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for t in tokens:
        if t.kind == "sym" and t.text in "([{":
            stack.append(t.text)
        elif t.kind == "sym" and t.text in ")]}" and (not stack or stack.pop() != pairs[t.text]):
            raise SyntaxError(f"unbalanced {t.text!r}")
        if t.kind == "sym" and t.text == sep and not stack:
            parts.append([])
        else:
            parts[-1].append(t)
    if stack:
        raise SyntaxError(f"unclosed {stack[-1]!r}")
    return parts


def check(text: str) -> list[str]:
    """The tables a query reads. Raises SyntaxError on what the check can see."""
    statements = [s for s in _split(tokenize(text), ";") if s]
    if not statements:
        raise SyntaxError("no statement")
    names: set[str] = set()
    for let in statements[:-1]:
        if not (let[0].text == "let" and let[1].kind == "word" and let[2].text == "=" and let[3:]):
            raise SyntaxError("only `let name = ...;` may come before the query")
        names.add(let[1].text)
    stages = _split(statements[-1], "|")
    if any(not stage for stage in stages):
        raise SyntaxError("empty pipeline stage")
    source = stages[0]
    if len(source) != 1 or source[0].text not in TABLES | names:
        raise SyntaxError(f"unknown source {' '.join(t.text for t in source)!r}")
    for stage in stages[1:]:
        head = stage[0].text
        if head == "project" and len(stage) > 2 and stage[1].text == "-":
            head = "project-" + stage[2].text
        if head not in OPERATORS:
            raise SyntaxError(f"unknown operator {head!r}")
        if head in ("order", "sort") and (len(stage) < 2 or stage[1].text != "by"):
            raise SyntaxError(f"{head} without by")
        for a, b in zip(stage[1:], stage[2:], strict=False):
            if a.kind == "word" and b.text == "(" and a.text not in FUNCTIONS | KEYWORDS:
                raise SyntaxError(f"unknown function {a.text!r}")
        _check_assignments(stage)
    return [source[0].text]


def _check_assignments(stage: list[Token]) -> None:
    """In extend/summarize/project, each comma-separated item is `expr` or `name = expr`."""
    if stage[0].text not in ("extend", "summarize", "project"):
        return
    body = stage[1:]
    for clause in _split(body, ","):
        if not clause:
            raise SyntaxError(f"empty item in {stage[0].text}")
        if len(clause) >= 2 and clause[1].text == "=" and clause[0].kind != "word":
            raise SyntaxError(f"bad column name in {stage[0].text}")
