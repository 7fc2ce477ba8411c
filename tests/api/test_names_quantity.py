"""Name formats and resource quantities, as Kubernetes parses them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shoal.api import names
from shoal.api.quantity import QuantityError, parse_quantity


@pytest.mark.parametrize("text,value", [
    ("100m", Decimal("0.1")), ("64Mi", Decimal(64 * 2**20)), ("1G", Decimal(10**9)),
    ("0.5", Decimal("0.5")), ("1e3", Decimal(1000)), ("1E-3", Decimal("0.001")),
    ("2Ki", Decimal(2048)), (".5", Decimal("0.5")), ("250u", Decimal("0.00025")),
    (2, Decimal(2)), (0.25, Decimal("0.25")), ("+1", Decimal(1)),
])
def test_quantities(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["64Mx", "", "Mi", "1.2.3", "1 Gi", "abc", True, None, "1Gi2"])
def test_malformed_quantities(text):
    with pytest.raises(QuantityError, match="quantities must match the regular expression"):
        parse_quantity(text)


@pytest.mark.parametrize("check,good,bad", [
    (names.check_dns1123_label, ["a", "web-1", "1abc", "a" * 63], ["", "Web", "a.b", "-a", "a-", "a" * 64]),
    (names.check_dns1123_subdomain, ["a.b.c", "example.com", "1a"], ["", "a..b", "A.b", "a_b", "a" * 254]),
    (names.check_dns1035_label, ["web", "a-1"], ["1web", "web.x", ""]),
    (names.check_qualified_name, ["app", "example.com/App_1", "a.b"], ["", "/a", "a/", "a/b/c", "-a", "a" * 64]),
    (names.check_label_value, ["", "v1.0-beta_2", "a" * 63], ["a b", "-a", "a" * 64]),
    (names.check_iana_svc_name, ["http", "grpc-web", "h2c"], ["8080", "a--b", "-http", "http-", "HTTP",
                                                             "abcdefghijklmnop"]),
    (names.check_env_var_name, ["PATH", "my.env-name", "_X", "a1"], ["1A", "A=B", "A B", ""]),
    (names.check_config_key, ["a.b", "KEY_1", ".hidden"], ["..x", ".", "..", "a/b", ""]),
    (names.check_percent, ["0%", "25%", "100%"], ["25", "%", "2.5%"]),
    (names.check_ip, ["10.0.0.1", "::1"], ["10.0.0.256", "host"]),
    (names.check_endpoint_ip, ["10.42.0.5", "fd00::1"], ["127.0.0.1", "0.0.0.0", "169.254.0.1", "224.0.0.1"]),
])
def test_name_formats(check, good, bad):
    for value in good:
        assert check(value) == [], value
    for value in bad:
        assert check(value), value


def test_messages_are_kubernetes_wording():
    assert names.check_dns1123_label("Web") == [
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
    assert names.check_label_value("a" * 64)[0] == "must be no more than 63 characters"
    assert names.check_object_name("web-", "label", prefix=True) == []
