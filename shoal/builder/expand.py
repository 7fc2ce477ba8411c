"""Variable expansion in Dockerfile words, as Docker's shell lexer does it (pure).

Supports `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alternative}`, `\\$` as a literal
dollar, and no expansion inside single quotes. Quotes are kept (callers dequote with
`dockerfile_parse.util.WordSplitter`), so `ENV A="$B c"` stays one word.
"""

from __future__ import annotations

import re
from typing import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expand(text: str, variables: Mapping[str, str]) -> str:
    out: list[str] = []
    i, quote = 0, None
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] == "$" and quote != "'":
            out.append("\\$")
            i += 2
            continue
        if c in "'\"":
            if quote is None:
                quote = c
            elif quote == c:
                quote = None
            out.append(c)
            i += 1
            continue
        if c == "$" and quote != "'" and i + 1 < len(text):
            if text[i + 1] == "{":
                end = text.find("}", i + 2)
                if end < 0:
                    raise ValueError(f"unterminated ${{ in {text!r}")
                out.append(_braced(text[i + 2:end], variables))
                i = end + 1
                continue
            m = _NAME.match(text, i + 1)
            if m:
                out.append(variables.get(m.group(0), ""))
                i = m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


def _braced(body: str, variables: Mapping[str, str]) -> str:
    for op in (":-", ":+", "-", "+"):
        name, sep, word = body.partition(op)
        if sep and _NAME.fullmatch(name):
            value = variables.get(name)
            if op == ":-":
                return value if value else word
            if op == ":+":
                return word if value else ""
            if op == "-":
                return value if value is not None else word
            return word if value is not None else ""
    if not _NAME.fullmatch(body):
        raise ValueError(f"bad substitution ${{{body}}}")
    return variables.get(body, "")
