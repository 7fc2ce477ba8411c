"""Name and value formats of the Kubernetes API, with Kubernetes' own error wording.

Each `check_*` function is pure and returns a list of problem descriptions (empty when
the value is fine), worded like `k8s.io/apimachinery/pkg/util/validation`, so callers
wrap them in `FieldError`s at the path they are checking:

    for msg in names.check_dns1123_label(name):
        errs.append(errors.invalid("metadata.name", name, msg))

No state, no I/O; safe from any thread.
"""

from __future__ import annotations

import ipaddress
import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = 63
CONFIG_KEY_MAX = 253
IANA_SVC_NAME_MAX = 15


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    text = msg
    if examples:
        text += " (e.g. " + ",  or ".join(f"'{e}'" for e in examples) + ", "
    else:
        text += " ("
    return text + f"regex used for validation is '{fmt}')"


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL_FMT}$")
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)

_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)

_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character"
)

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)

_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)

_ENV_VAR_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_RE = re.compile(f"^{_ENV_VAR_FMT}$")
_ENV_VAR_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit"
)

_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}$")
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"

_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(f"^{_PERCENT_FMT}$")

_IANA_CHARS_RE = re.compile("^[-a-z0-9]+$")
_IANA_LETTER_RE = re.compile("[a-z]")


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def check_dns1123_label(value: str) -> list[str]:
    """A DNS-1123 label: Namespace names, container/port/volume names."""
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(_max_len(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL_RE.match(value):
        errs.append(_regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def check_dns1123_subdomain(value: str) -> list[str]:
    """A DNS-1123 subdomain: names of most objects."""
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(_max_len(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def check_dns1035_label(value: str) -> list[str]:
    """A DNS-1035 label (starts with a letter): Service names."""
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(_max_len(DNS1123_LABEL_MAX))
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(_regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


NAME_CHECKS = {
    "subdomain": check_dns1123_subdomain,
    "label": check_dns1123_label,
    "dns1035": check_dns1035_label,
}
"""Object name formats by the name a kind registers (`kinds.register(name_format=)`)."""


def check_object_name(value: str, name_format: str, *, prefix: bool = False) -> list[str]:
    """Checks an object name; with prefix=True checks a generateName prefix, whose trailing
    '-' is allowed because random characters follow it (as Kubernetes does)."""
    if prefix:
        value = value[:-1] if value.endswith("-") else value
        if not value:
            return []
    return NAME_CHECKS[name_format](value)


def check_qualified_name(value: str) -> list[str]:
    """A qualified name: label and annotation keys, finalizers (`[prefix/]name`)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in check_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + _max_len(QUALIFIED_NAME_MAX))
    if name and not _QUALIFIED_NAME_RE.match(name):
        errs.append(
            "name part "
            + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def check_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(_max_len(LABEL_VALUE_MAX))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def check_iana_svc_name(value: str) -> list[str]:
    """A port name (IANA_SVC_NAME, RFC 6335): at most 15 of [a-z0-9-], one letter at least."""
    errs = []
    if len(value) > IANA_SVC_NAME_MAX:
        errs.append(_max_len(IANA_SVC_NAME_MAX))
    if not _IANA_CHARS_RE.match(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if not _IANA_LETTER_RE.search(value):
        errs.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def check_env_var_name(value: str) -> list[str]:
    if not _ENV_VAR_RE.match(value):
        return [_regex_error(_ENV_VAR_MSG, _ENV_VAR_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1")]
    return []


def check_config_key(value: str) -> list[str]:
    """A key of ConfigMap/Secret data (it becomes a file name in a volume)."""
    errs = []
    if len(value) > CONFIG_KEY_MAX:
        errs.append(_max_len(CONFIG_KEY_MAX))
    if not _CONFIG_KEY_RE.match(value):
        errs.append(_regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def check_percent(value: str) -> list[str]:
    if not _PERCENT_RE.match(value):
        return [
            _regex_error(
                "a valid percent string must be a numeric string followed by an ending '%'",
                _PERCENT_FMT, "1%", "93%",
            )
        ]
    return []


def check_port_number(value: object) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return ["must be between 1 and 65535, inclusive"]
    return []


def check_ip(value: str) -> list[str]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def check_endpoint_ip(value: str) -> list[str]:
    """An endpoint address: a valid IP that is not unspecified, loopback, link-local or
    multicast (Kubernetes' rule, so a Service never routes to the node itself)."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return check_ip(value)
    if ip.is_unspecified:
        return ["may not be unspecified (0.0.0.0)" if ip.version == 4 else "may not be unspecified (::)"]
    if ip.is_loopback:
        return ["may not be in the loopback range (127.0.0.0/8, ::1/128)"]
    if ip.is_link_local:
        return ["may not be in the link-local range (169.254.0.0/16, fe80::/10)"]
    if ip.is_multicast:
        return ["may not be a multicast address"]
    return []
