"""Label and field selectors with Kubernetes' syntax, semantics and error messages.

Pure and immutable: a parsed selector is a frozen value, safe to share between tasks and
threads and to use as a dict key.

Label selectors (`parse_label_selector`) follow `k8s.io/apimachinery/pkg/labels`: the
same lexer (identifiers end at whitespace or one of ``=!(),<>``; ``in``/``notin`` are
keywords only where an operator is expected), the same grammar
(``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``, ``a>1``,
``a<1``, joined by commas), the same validation of keys (qualified names) and values
(label values), and the same messages (``unable to parse requirement: found '', expected:
identifier``). `str()` gives the canonical form (requirements sorted by key, set values
sorted), as `labels.Selector.String()` does.

Object selectors (`selector_from_spec`) follow `metav1.LabelSelectorAsSelector`:
``None`` selects nothing, ``{}`` selects everything; the plain map form
(``{"app": "web"}``) is accepted too. A Service is special: its ``spec.selector`` map,
when absent or empty, means "this Service has no selector, endpoints are managed by
hand", so the endpoints controller must use `selector_from_service`, which returns
`NOTHING` in that case.

Field selectors live in `shoal.api.fieldselectors`; `parse_field_selector` is
re-exported here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from shoal.api import errors, names
from shoal.api.fieldselectors import FieldSelector, FieldTerm, parse_field_selector, supported_fields

__all__ = [
    "Requirement", "LabelSelector", "EVERYTHING", "NOTHING", "parse_label_selector",
    "make_requirement", "label_selector_errors", "selector_from_spec", "selector_from_service",
    "format_labels", "FieldSelector", "FieldTerm", "parse_field_selector", "supported_fields",
]

# ----------------------------------------------------------------------------- labels

EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "in", "notin", "exists", "!"
GREATER_THAN, LESS_THAN = "gt", "lt"


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One term: key, operator (one of the constants above) and its values."""

    key: str
    operator: str
    values: tuple[str, ...] = ()
    """A set, as in Kubernetes: stored sorted and without duplicates."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(sorted(set(self.values))))

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in (EQUALS, DOUBLE_EQUALS, IN):
            return present and value in self.values
        if self.operator in (NOT_EQUALS, NOT_IN):
            return not present or value not in self.values
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if not present:
            return False
        try:
            number = int(str(value))
        except ValueError:
            return False
        limit = int(self.values[0])
        return number > limit if self.operator == GREATER_THAN else number < limit

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{values}"


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements. `nothing=True` is the selector that matches no
    object (a nil metav1.LabelSelector)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when the selector matches every object."""
        return not self.requirements and not self.nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def exact_labels(self) -> dict[str, str]:
        """The key=value pairs every match must carry (for index lookups)."""
        return {r.key: r.values[0] for r in self.requirements
                if r.operator in (EQUALS, DOUBLE_EQUALS) or (r.operator == IN and len(r.values) == 1)}

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        if self.nothing:
            return "LabelSelector(<nothing>)"
        return f"LabelSelector({str(self)!r})"


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)

_SPECIAL = "=!(),<>"
_WHITESPACE = " \t\r\n"
_SYMBOLS = {"=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS, "!": DOES_NOT_EXIST,
            "(": "(", ")": ")", ",": ",", ">": ">", "<": "<"}
_IDENT, _END, _ERROR = "identifier", "end", "error"


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (type, literal); keywords `in`/`notin` get their own types."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
        elif ch in _SPECIAL:
            # Longest run of special characters that is still a known symbol.
            j, best = i, None
            while j < len(text) and text[j] in _SPECIAL:
                j += 1
                if text[i:j] in _SYMBOLS:
                    best = j
                elif best is not None:
                    break
            if best is None:
                tokens.append((_ERROR, f"error expected: keyword found '{text[i:j]}'"))
                i = j
            else:
                tokens.append((_SYMBOLS[text[i:best]], text[i:best]))
                i = best
        else:
            j = i
            while j < len(text) and text[j] not in _WHITESPACE and text[j] not in _SPECIAL:
                j += 1
            word = text[i:j]
            tokens.append((word if word in (IN, NOT_IN) else _IDENT, word))
            i = j
    tokens.append((_END, ""))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.position = 0

    def _get(self, values: bool, advance: bool) -> tuple[str, str]:
        kind, literal = self.tokens[min(self.position, len(self.tokens) - 1)]
        if advance:
            self.position += 1
        if values and kind in (IN, NOT_IN):
            kind = _IDENT
        return kind, literal

    def consume(self, values: bool = True) -> tuple[str, str]:
        return self._get(values, True)

    def lookahead(self, values: bool = True) -> tuple[str, str]:
        return self._get(values, False)

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.lookahead()
            if kind in (_IDENT, DOES_NOT_EXIST):
                try:
                    requirements.append(self.requirement())
                except _ParseError as exc:
                    raise _ParseError(f"unable to parse requirement: {exc}") from None
                kind, literal = self.consume()
                if kind == _END:
                    return requirements
                if kind == ",":
                    next_kind, next_literal = self.lookahead()
                    if next_kind not in (_IDENT, DOES_NOT_EXIST):
                        raise _ParseError(
                            f"found '{next_literal}', expected: identifier after ','")
                else:
                    raise _ParseError(f"found '{literal}', expected: ',' or 'end of string'")
            elif kind == _END:
                return requirements
            else:
                raise _ParseError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        operator = ""
        kind, literal = self.consume()
        if kind == DOES_NOT_EXIST:
            operator = DOES_NOT_EXIST
            kind, literal = self.consume()
        if kind != _IDENT:
            raise _ParseError(f"found '{literal}', expected: identifier")
        key = literal
        _check_key(key)
        if self.lookahead()[0] in (_END, ","):
            return make_requirement(key, operator or EXISTS, ())
        if operator == DOES_NOT_EXIST:
            return make_requirement(key, operator, ())
        operator = self.operator()
        if operator in (IN, NOT_IN):
            values = self.set_values()
        else:
            values = self.exact_value()
        return make_requirement(key, operator, values)

    def operator(self) -> str:
        kind, literal = self.consume(values=False)
        operators = {IN: IN, NOT_IN: NOT_IN, EQUALS: EQUALS, DOUBLE_EQUALS: DOUBLE_EQUALS,
                     NOT_EQUALS: NOT_EQUALS, ">": GREATER_THAN, "<": LESS_THAN}
        if kind not in operators:
            raise _ParseError(
                f"found '{literal}', expected: in, notin, =, ==, !=, gt, lt")
        return operators[kind]

    def set_values(self) -> tuple[str, ...]:
        kind, literal = self.consume()
        if kind != "(":
            raise _ParseError(f"found '{literal}' expected: '('")
        kind, literal = self.lookahead()
        if kind == ")":
            self.consume()
            return ("",)
        if kind not in (_IDENT, ","):
            raise _ParseError(f"found '{literal}', expected: ',', ')' or identifier")
        values: list[str] = []
        while True:
            kind, literal = self.consume()
            if kind == _IDENT:
                values.append(literal)
                next_kind, next_literal = self.lookahead()
                if next_kind == ",":
                    self.consume()
                    if self.lookahead()[0] == ")":
                        values.append("")
                    continue
                if next_kind == ")":
                    self.consume()
                    return tuple(dict.fromkeys(values))
                raise _ParseError(f"found '{next_literal}', expected: ',' or ')'")
            if kind == ",":
                # "(,x)", "(x,,y)" and "(x,)" carry an empty value.
                values.append("")
                if self.lookahead()[0] == ")":
                    self.consume()
                    return tuple(dict.fromkeys(values))
                continue
            if kind == ")":
                return tuple(dict.fromkeys(values))
            raise _ParseError(f"found '{literal}', expected: ',', or identifier")

    def exact_value(self) -> tuple[str, ...]:
        kind, _ = self.lookahead()
        if kind in (_END, ","):
            return ("",)
        kind, literal = self.consume()
        if kind == _IDENT:
            return (literal,)
        raise _ParseError(f"found '{literal}', expected: identifier")


class _ParseError(Exception):
    pass


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a `labelSelector` query parameter / `-l` flag; None or "" selects everything.

    Raises errors.BadRequest with Kubernetes' message naming the bad part."""
    if text is None or not text.strip():
        return EVERYTHING
    try:
        requirements = _Parser(text).parse()
    except _ParseError as exc:
        raise errors.BadRequest(str(exc)) from None
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


def make_requirement(key: str, operator: str, values: Iterable[str]) -> Requirement:
    """A validated requirement (labels.NewRequirement); raises BadRequest when the key,
    the values or their number are wrong for the operator."""
    values = tuple(values)
    problems = _requirement_errors(key, operator, values, "")
    if problems:
        raise _ParseError("; ".join(str(p) for p in problems))
    return Requirement(key, operator, values)


def _check_key(key: str) -> None:
    messages = names.check_qualified_name(key)
    if messages:
        raise _ParseError(str(errors.invalid("key", key, "; ".join(messages))))


def _requirement_errors(key: str, operator: str, values: tuple[str, ...],
                        prefix: str) -> list[errors.FieldError]:
    problems: list[errors.FieldError] = []
    messages = names.check_qualified_name(key)
    if messages:
        problems.append(errors.invalid(prefix + "key", key, "; ".join(messages)))
    values_path = prefix + "values"
    if operator in (IN, NOT_IN):
        if not values:
            problems.append(errors.invalid(
                values_path, list(values), "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            problems.append(errors.invalid(
                values_path, list(values), "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if values:
            problems.append(errors.invalid(
                values_path, list(values), "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            problems.append(errors.invalid(
                values_path, list(values), "for 'Gt', 'Lt' operators, exactly one value is required"))
        else:
            try:
                int(values[0])
            except ValueError:
                problems.append(errors.invalid(
                    f"{values_path}[0]", values[0],
                    "for 'Gt', 'Lt' operators, the value must be an integer"))
        return problems
    else:
        problems.append(errors.unsupported(
            prefix + "operator", operator, [EQUALS, DOUBLE_EQUALS, NOT_EQUALS, IN, NOT_IN]))
        return problems
    for index, value in enumerate(values):
        messages = names.check_label_value(value)
        if messages:
            problems.append(errors.invalid(f"{values_path}[{index}]", value, "; ".join(messages)))
    return problems


# ------------------------------------------------------------------ object selectors

_SPEC_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_errors(spec: Any, path: str = "selector") -> list[errors.FieldError]:
    """Every problem of a metav1.LabelSelector (or a plain label map) at `path`, worded
    like Kubernetes' validation; [] when it is valid (None is valid)."""
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        return [errors.invalid(path, spec, "must be an object")]
    if not _is_metav1_form(spec):
        return _label_map_errors(spec, path)
    problems: list[errors.FieldError] = []
    match_labels = spec.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        problems.append(errors.invalid(f"{path}.matchLabels", match_labels, "must be an object"))
    else:
        problems += _label_map_errors(match_labels, f"{path}.matchLabels")
    expressions = spec.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return problems + [errors.invalid(f"{path}.matchExpressions", expressions, "must be a list")]
    for index, expression in enumerate(expressions):
        where = f"{path}.matchExpressions[{index}]"
        if not isinstance(expression, Mapping):
            problems.append(errors.invalid(where, expression, "must be an object"))
            continue
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if not isinstance(key, str) or not key:
            problems.append(errors.required(f"{where}.key"))
            continue
        if operator not in _SPEC_OPERATORS:
            problems.append(errors.unsupported(f"{where}.operator", operator, list(_SPEC_OPERATORS)))
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(errors.invalid(f"{where}.values", values, "must be a list of strings"))
            continue
        problems += _requirement_errors(key, _SPEC_OPERATORS[operator], tuple(values), f"{where}.")
    return problems


def selector_from_spec(spec: Mapping | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: None -> NOTHING, {} -> EVERYTHING; matchLabels and
    matchExpressions (In, NotIn, Exists, DoesNotExist) are ANDed. A plain label map
    (``{"app": "web"}``) selects objects carrying all its labels. Raises BadRequest
    naming the field when the selector is invalid."""
    if spec is None:
        return NOTHING
    problems = label_selector_errors(spec, "selector")
    if problems:
        raise errors.BadRequest("invalid label selector: " + ", ".join(str(p) for p in problems))
    if not _is_metav1_form(spec):
        return _from_label_map(spec)
    requirements = [Requirement(k, EQUALS, (v,)) for k, v in (spec.get("matchLabels") or {}).items()]
    for expression in spec.get("matchExpressions") or []:
        operator = _SPEC_OPERATORS[expression["operator"]]
        values = tuple(dict.fromkeys(expression.get("values") or ()))
        requirements.append(Requirement(expression["key"], operator, values))
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


def selector_from_service(selector: Mapping[str, str] | None) -> LabelSelector:
    """The pods a Service's ``spec.selector`` map selects. Absent or empty means the
    Service has no selector (its Endpoints are written by hand): NOTHING, not
    everything."""
    if not selector:
        return NOTHING
    return selector_from_spec(dict(selector))


def format_labels(labels: Mapping[str, str] | None) -> str:
    """labels.FormatLabels: 'a=1,b=2' sorted by key, '<none>' when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _is_metav1_form(spec: Mapping) -> bool:
    return bool(spec) and set(spec) <= {"matchLabels", "matchExpressions"} and not any(
        isinstance(v, str) for v in spec.values())


def _label_map_errors(labels: Mapping, path: str) -> list[errors.FieldError]:
    problems: list[errors.FieldError] = []
    for key, value in labels.items():
        if not isinstance(key, str) or names.check_qualified_name(key):
            problems.append(errors.invalid(path, key, "; ".join(names.check_qualified_name(str(key)))))
        elif not isinstance(value, str):
            problems.append(errors.invalid(f"{path}.{key}", value, "must be a string"))
        elif names.check_label_value(value):
            problems.append(errors.invalid(f"{path}.{key}", value, "; ".join(names.check_label_value(value))))
    return problems


def _from_label_map(labels: Mapping) -> LabelSelector:
    return LabelSelector(tuple(Requirement(k, EQUALS, (labels[k],)) for k in sorted(labels)))
