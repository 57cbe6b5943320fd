"""What an `az` call in a PowerShell script becomes on Windows, without Windows: the
tests run infra/hooks/postdeploy.ps1's argument building through each step a real call
takes, to see the arguments Azure CLI ends up with.

1. PowerShell evaluates the arguments (`powershell_arguments`: quoted strings, variables,
   `$(...)`), from the script's own text.
2. `az` is az.cmd, a batch file: PowerShell joins the arguments into one command line
   (`command_line`), putting quotes around an argument only when it holds whitespace.
   That is its Legacy way, which it keeps for batch files in every version; Standard (a
   user's choice in 7.3 and later) also escapes quotes inside an argument as `\\"`.
3. cmd.exe parses that line (`cmd_pieces`): outside double quotes `&`, `|`, `<` and `>`
   end the command (the rest runs as another command or names a redirection) and `^`
   escapes the next character; quotes stay in the text.
4. az.cmd runs `python.exe -IBm azure.cli %*`, and cmd.exe parses that line again.
5. python.exe splits its command line as the Microsoft C runtime does (`crt_argv`).
6. Azure CLI replaces an argument `@<file>` (or `--name=@<file>`) with that file's text.

`az_arguments` chains 3 to 6. cmd.exe's `%VAR%` expansion is not modelled: a line with
`%` in it is refused rather than misread."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_SPECIAL = "&|<>"


def statement(script: str, start: str) -> str:
    """The statement of `script` that starts with `start`, its lines ending in a backtick
    (PowerShell's line continuation) joined."""
    lines = script.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(start):
            parts = []
            for continued in lines[i:]:
                text = continued.strip()
                parts.append(text.removesuffix("`").strip())
                if not text.endswith("`"):
                    return " ".join(parts)
    raise LookupError(f"no statement starts with {start!r}")


def assignments(script: str, variables: dict[str, Any]) -> dict[str, Any]:
    """`variables` plus the script's `$name = <one value>` lines, in order, evaluated as
    PowerShell would; assignments of a command's output (`$x = az ...`) are left to the
    caller, who knows what the command answers."""
    found = dict(variables)
    for line in script.splitlines():
        match = re.fullmatch(r"\s*\$(\w+) = (.+?)\s*", line)
        if not match:
            continue
        try:
            values = powershell_arguments(match[2], found)
        except ValueError:
            continue
        if len(values) == 1:
            found[match[1]] = values[0]
    return found


def powershell_arguments(text: str, variables: dict[str, Any]) -> list[str]:
    """The values PowerShell makes of a command's words: 'single' quoted as written,
    "double" quoted with `$name`, `${name}` and `$($name.Member)` expanded, and bare words,
    where `$name.Member` reads a member. Raises ValueError on anything else."""
    words: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            value, i = _single_quoted(text, i)
            words.append(value)
        elif ch == '"':
            value, i = _double_quoted(text, i, variables)
            words.append(value)
        else:
            end = i
            while end < len(text) and not text[end].isspace():
                end += 1
            word = text[i:end]
            i = end
            if word.startswith("$"):
                value = _member(word, variables)
                if value is not None:  # $null is passed as no argument at all
                    words.append(_ps_text(value))
            elif any(c in word for c in "$@'\"`(){};"):
                raise ValueError(f"not a plain PowerShell word: {word!r}")
            else:
                words.append(word)
    return words


def _single_quoted(text: str, i: int) -> tuple[str, int]:
    out, i = [], i + 1
    while True:
        if i >= len(text):
            raise ValueError("unterminated '")
        if text[i] == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(text[i])
        i += 1


def _double_quoted(text: str, i: int, variables: dict[str, Any]) -> tuple[str, int]:
    out, i = [], i + 1
    while True:
        if i >= len(text):
            raise ValueError('unterminated "')
        ch = text[i]
        if ch == "`":
            escaped = text[i + 1]
            out.append({"n": "\n", "t": "\t", "0": "\0"}.get(escaped, escaped))
            i += 2
        elif ch == '"':
            if text[i + 1 : i + 2] == '"':
                out.append('"')
                i += 2
                continue
            return "".join(out), i + 1
        elif ch == "$" and text[i + 1 : i + 2] == "(":
            depth, j = 1, i + 2
            while depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            inner = text[i + 2 : j - 1].strip()
            if not re.fullmatch(r"\$\w+(\.\w+)*", inner):
                raise ValueError(f"$({inner}) is more than a variable")
            out.append(_ps_text(_member(inner, variables)))
            i = j
        elif ch == "$" and text[i + 1 : i + 2] == "{":
            j = text.index("}", i)
            out.append(_ps_text(variables.get(text[i + 2 : j])))
            i = j + 1
        elif ch == "$" and re.match(r"[\w?]", text[i + 1 : i + 2]):
            # In a string only the name is read (`?` belongs to it too): "$a.b" is $a's
            # text followed by ".b".
            name = re.match(r"[\w?]+", text[i + 1 :])[0]  # type: ignore[index]
            out.append(_ps_text(variables.get(name)))
            i += 1 + len(name)
        else:
            out.append(ch)
            i += 1


def _member(reference: str, variables: dict[str, Any]) -> Any:
    name, *members = reference[1:].split(".")
    value = variables.get(name)
    for member in members:
        value = value.get(member) if isinstance(value, dict) else None
    return value


def _ps_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return "System.Collections.Hashtable"
    return str(value)


def command_line(words: list[str], mode: str = "Legacy") -> str:
    """The command line PowerShell starts a native command with (mode as
    $PSNativeCommandArgumentPassing; Legacy is what batch files always get)."""
    if mode == "Legacy":
        quoted = [
            f'"{w}"' if not w or (re.search(r"\s", w) and not w.startswith('"')) else w
            for w in words
        ]
    elif mode == "Standard":
        quoted = [_standard_quote(w) for w in words]
    else:
        raise ValueError(mode)
    return " ".join(quoted)


def _standard_quote(word: str) -> str:
    """As .NET's ProcessStartInfo.ArgumentList writes one argument."""
    if word and not re.search(r'[\s"]', word):
        return word
    out, backslashes = ['"'], 0
    for ch in word:
        if ch == "\\":
            backslashes += 1
            continue
        if ch == '"':
            out.append("\\" * (backslashes * 2 + 1) + '"')
        else:
            out.append("\\" * backslashes + ch)
        backslashes = 0
    out.append("\\" * (backslashes * 2) + '"')
    return "".join(out)


def cmd_pieces(line: str) -> list[str]:
    """How cmd.exe cuts a command line: the command first, then each text that an
    unquoted `&`, `|`, `<` or `>` starts (another command, or a redirection), with the
    carets that escaped a character taken out and the quotes kept."""
    if "%" in line:
        raise ValueError("cmd.exe's % expansion is not modelled")
    pieces, current, quoted, i = [], [], False, 0
    while i < len(line):
        ch = line[i]
        if ch == '"':
            quoted = not quoted
            current.append(ch)
        elif not quoted and ch == "^":
            i += 1
            if i < len(line):
                current.append(line[i])
        elif not quoted and ch in _SPECIAL:
            pieces.append("".join(current).strip())
            current = []
            while i + 1 < len(line) and line[i + 1] in _SPECIAL:
                i += 1
        else:
            current.append(ch)
        i += 1
    pieces.append("".join(current).strip())
    return pieces


def crt_argv(text: str) -> list[str]:
    """Arguments as the Microsoft C runtime splits a command line (what python.exe's
    sys.argv is made of)."""
    args, current, has_arg, quoted, i = [], [], False, False, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            run = len(text[i:]) - len(text[i:].lstrip("\\"))
            i += run
            if text[i : i + 1] == '"':
                current.append("\\" * (run // 2))
                if run % 2:
                    current.append('"')
                    i += 1
                has_arg = True
            else:
                current.append("\\" * run)
                has_arg = True
            continue
        if ch == '"':
            if quoted and text[i + 1 : i + 2] == '"':
                current.append('"')
                i += 2
                continue
            quoted = not quoted
            has_arg = True
        elif ch in " \t" and not quoted:
            if has_arg:
                args.append("".join(current))
            current, has_arg = [], False
        else:
            current.append(ch)
            has_arg = True
        i += 1
    if has_arg:
        args.append("".join(current))
    return args


def az_arguments(line: str, cwd: Path) -> list[str]:
    """What Azure CLI is asked to do when cmd.exe runs `line` (`az ...`) in `cwd`; raises
    AssertionError when cmd.exe would run anything besides az."""
    first = cmd_pieces(line)
    assert len(first) == 1, f"cmd.exe runs more than az: {first[1:]}"
    head, _, rest = first[0].partition(" ")
    assert head == "az", head
    # az.cmd: `"%~dp0\..\python.exe" -IBm azure.cli %*`, parsed by cmd.exe once more.
    second = cmd_pieces(f"python.exe -IBm azure.cli {rest}")
    assert len(second) == 1, f"az.cmd runs more than Python: {second[1:]}"
    argv = crt_argv(second[0])[3:]
    return [_expand_file_argument(arg, cwd) for arg in argv]


def _expand_file_argument(arg: str, cwd: Path) -> str:
    name, equals, value = arg.partition("=")
    if not equals:
        name, value = "", arg
    if value.startswith("@") and len(value) > 1:
        path = cwd / value[1:]
        if path.is_file():
            value = path.read_text(encoding="utf-8-sig").rstrip("\r\n")
    return f"{name}={value}" if equals else value
