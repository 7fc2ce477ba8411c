"""Kubernetes resource quantities ("100m", "64Mi", "1G", "0.5", "1e3") as exact Decimals.

`parse_quantity` follows the grammar of `k8s.io/apimachinery/pkg/api/resource`:

    <quantity> ::= <signedNumber><suffix>
    <suffix>   ::= Ki | Mi | Gi | Ti | Pi | Ei            (binary SI, powers of 1024)
                 | n | u | m | "" | k | M | G | T | P | E  (decimal SI)
                 | e<signedNumber> | E<signedNumber>      (decimal exponent)

Numbers (YAML `cpu: 2`, `cpu: 0.5`) are accepted as Kubernetes accepts them. Users of
quantities (cgroup limits in the node agent, PVC sizes) call `parse_quantity(q)` and
convert: `int(parse_quantity("64Mi"))` bytes, `parse_quantity("250m") * 1000` millicores.
Pure; no state.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

QUANTITY_FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)

_RE = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)

_MULTIPLIERS = {
    None: Decimal(1),
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"),
    "T": Decimal("1e12"), "P": Decimal("1e15"), "E": Decimal("1e18"),
}


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity; str() is Kubernetes' message."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a quantity; raises QuantityError when malformed."""
    if isinstance(value, bool):
        raise QuantityError(QUANTITY_FORMAT_ERROR)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError(QUANTITY_FORMAT_ERROR)
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise QuantityError(QUANTITY_FORMAT_ERROR)
    m = _RE.match(value.strip())
    if not m:
        raise QuantityError(QUANTITY_FORMAT_ERROR)
    number, suffix = m.groups()
    try:
        base = Decimal(number)
        if suffix and suffix[0] in "eE":
            return base.scaleb(int(suffix[1:]))
        return base * _MULTIPLIERS[suffix]
    except (decimal.InvalidOperation, ValueError, OverflowError) as exc:
        raise QuantityError(QUANTITY_FORMAT_ERROR) from exc


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except QuantityError:
        return False
    return True
