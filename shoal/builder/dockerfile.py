"""Dockerfile -> `Dockerfile` model (pure): stages, instructions, flags, forms.

Tokenizing (line continuations, comments, heredoc-free instruction splitting) is done
by `dockerfile-parse`; this module adds what a builder needs on top: 1-based line
numbers, `--flag=value` options checked against each instruction's allowed set, exec
(JSON) vs shell form, stage boundaries with `AS name`, and the ARGs declared before the
first FROM. Variable expansion happens later, per stage (see `expand.py`), because the
values of ARG and ENV depend on the stage and on --build-arg.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from typing import Sequence

from dockerfile_parse import DockerfileParser

from shoal.builder.errors import DockerfileSyntaxError, UnsupportedInstruction

ALLOWED_FLAGS: dict[str, set[str]] = {
    "FROM": {"platform"},
    "RUN": {"mount", "network"},
    "COPY": {"from", "chown", "chmod", "link"},
    "ADD": {"chown", "chmod", "checksum", "link"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
REPEATABLE_FLAGS = {"mount"}
SUPPORTED = {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE", "LABEL", "CMD",
             "ENTRYPOINT", "SHELL", "STOPSIGNAL", "HEALTHCHECK", "VOLUME", "MAINTAINER"}
KNOWN_UNSUPPORTED = {"ONBUILD": "ONBUILD triggers are not supported by shoal build"}
NEEDS_ARGUMENTS = SUPPORTED - {"HEALTHCHECK"}
_FLAG = re.compile(r"^--([A-Za-z][A-Za-z-]*)(?:=((?:\"[^\"]*\"|\S)*))?(?:\s+|$)")
_FROM = re.compile(r"^(\S+)(?:\s+[Aa][Ss]\s+(\S+))?$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9._-]*$")


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper-case instruction name (RUN, COPY, ...)."""
    line: int
    """1-based line where the instruction starts."""
    flags: dict[str, list[str]]
    """--name=value options, in order; a value-less flag has value ''."""
    value: str
    """What follows the flags, continuations joined (not yet expanded)."""
    exec_form: list[str] | None = None
    """The JSON-array form's words, when the instruction was written that way."""
    source: str = ""
    """The original text (for history `created_by` and error messages)."""

    def flag(self, name: str, default: str | None = None) -> str | None:
        values = self.flags.get(name)
        return values[-1] if values else default


@dataclasses.dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: str
    """The FROM argument before expansion (an image, `scratch`, or an earlier stage's name)."""
    line: int
    platform: str | None
    instructions: tuple[Instruction, ...]

    @property
    def label(self) -> str:
        return self.name or str(self.index)


@dataclasses.dataclass(frozen=True)
class Dockerfile:
    global_args: tuple[Instruction, ...]
    """ARG instructions before the first FROM (usable in FROM lines)."""
    stages: tuple[Stage, ...]

    def stage(self, ref: str) -> Stage | None:
        """A stage by name (case-insensitive) or by index."""
        low = ref.lower()
        for stage in self.stages:
            if stage.name == low:
                return stage
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


def split_flags(keyword: str, value: str, line: int) -> tuple[dict[str, list[str]], str]:
    allowed = ALLOWED_FLAGS.get(keyword, set())
    flags: dict[str, list[str]] = {}
    rest = value.strip()
    while rest.startswith("--"):
        m = _FLAG.match(rest)
        if not m:
            raise DockerfileSyntaxError(f"malformed option {rest.split()[0]!r}", line, keyword)
        name, flag_value = m.group(1).lower(), m.group(2)
        if name not in allowed:
            expected = ", ".join(f"--{f}" for f in sorted(allowed)) or "none"
            raise DockerfileSyntaxError(f"unknown option --{name} (allowed: {expected})", line, keyword)
        if name in flags and name not in REPEATABLE_FLAGS:
            raise DockerfileSyntaxError(f"option --{name} given twice", line, keyword)
        flags.setdefault(name, []).append((flag_value or "").strip('"'))
        rest = rest[m.end():]
    return flags, rest


def exec_form(value: str) -> list[str] | None:
    """The words of a JSON-array argument, or None for the shell form (as Docker does,
    text that looks like an array but is not valid JSON is a shell command)."""
    text = value.strip()
    if not text.startswith("["):
        return None
    try:
        words = json.loads(text)
    except ValueError:
        return None
    if isinstance(words, list) and all(isinstance(w, str) for w in words):
        return words
    return None


def parse(text: str) -> Dockerfile:
    """Parse Dockerfile text; raises DockerfileSyntaxError / UnsupportedInstruction."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    global_args: list[Instruction] = []
    stages: list[dict] = []
    for item in parser.structure:
        keyword = item["instruction"].upper()
        line = item["startline"] + 1
        if keyword == "COMMENT":
            continue
        if keyword in KNOWN_UNSUPPORTED:
            raise UnsupportedInstruction(KNOWN_UNSUPPORTED[keyword], line, keyword)
        if keyword not in SUPPORTED:
            raise UnsupportedInstruction(
                f"unknown instruction {item['instruction']!r} (supported: {', '.join(sorted(SUPPORTED))})",
                line, keyword)
        flags, value = split_flags(keyword, item["value"], line)
        if keyword in NEEDS_ARGUMENTS and not value:
            raise DockerfileSyntaxError("requires at least one argument", line, keyword)
        source = " ".join(item["content"].replace("\\\n", " ").split())
        ins = Instruction(keyword, line, flags, value, exec_form(value), source)
        if keyword == "FROM":
            m = _FROM.match(value)
            if not m:
                raise DockerfileSyntaxError(f"expected 'FROM image [AS name]', got {value!r}", line, keyword)
            name = m.group(2).lower() if m.group(2) else None
            if name is not None and not _STAGE_NAME.match(name):
                raise DockerfileSyntaxError(f"stage name {m.group(2)!r}: expected [a-z][a-z0-9._-]*", line, keyword)
            if name is not None and any(s["name"] == name for s in stages):
                raise DockerfileSyntaxError(f"stage name {name!r} is used twice", line, keyword)
            stages.append({"name": name, "base": m.group(1), "line": line,
                           "platform": ins.flag("platform"), "instructions": []})
        elif not stages:
            if keyword != "ARG":
                raise DockerfileSyntaxError("only ARG may come before the first FROM", line, keyword)
            global_args.append(ins)
        else:
            stages[-1]["instructions"].append(ins)
    if not stages:
        raise DockerfileSyntaxError("no FROM instruction: a Dockerfile must start a stage with FROM", 1)
    return Dockerfile(tuple(global_args), tuple(
        Stage(i, s["name"], s["base"], s["line"], s["platform"], tuple(s["instructions"]))
        for i, s in enumerate(stages)))


def parse_key_values(text: str, line: int, keyword: str, legacy_ok: bool = True) -> list[tuple[str, str]]:
    """`K=V K2="v 2"` (or the legacy `K some value` of ENV/LABEL) -> pairs, dequoted."""
    from dockerfile_parse.util import WordSplitter

    try:
        words = list(WordSplitter(text).split(dequote=True))
    except Exception as exc:  # the library raises plain exceptions on bad quoting
        raise DockerfileSyntaxError(f"cannot split {text!r}: {exc}", line, keyword) from None
    if not words:
        raise DockerfileSyntaxError("requires at least one argument", line, keyword)
    if "=" not in words[0]:
        if not legacy_ok or len(words) < 2:
            raise DockerfileSyntaxError(f"expected KEY=VALUE, got {text!r}", line, keyword)
        key, _, value = text.strip().partition(" ")
        return [(key, " ".join(WordSplitter(value.strip()).split(dequote=True)))]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise DockerfileSyntaxError(f"expected KEY=VALUE, got {word!r}", line, keyword)
        pairs.append((key, value))
    return pairs


def shell_words(text: str, line: int, keyword: str) -> list[str]:
    from dockerfile_parse.util import WordSplitter

    try:
        return list(WordSplitter(text).split(dequote=True))
    except Exception as exc:
        raise DockerfileSyntaxError(f"cannot split {text!r}: {exc}", line, keyword) from None


def stage_references(stage: Stage) -> Sequence[str]:
    """Names/indexes of other stages (or images) this stage reads: FROM, COPY --from,
    RUN --mount=from=. Unexpanded; the planner decides which are stages."""
    refs = [stage.base]
    for ins in stage.instructions:
        if ins.keyword == "COPY" and ins.flag("from"):
            refs.append(ins.flag("from"))
        for mount in ins.flags.get("mount", []):
            for part in mount.split(","):
                k, _, v = part.partition("=")
                if k.strip() == "from" and v:
                    refs.append(v.strip())
    return refs
