"""Every resource a mesh test translates is parsed twice: by `fastparse` (what the
control plane uses) and by protobuf's json_format (the reference); they must agree."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from shoal.mesh.translate import fastparse

_parse = fastparse.parse


def _checked_parse(body, message):
    got = _parse(body, message)  # Unsupported propagates: to_proto then uses json_format
    want = json_format.ParseDict(body, type(message)())
    assert got == want, f"fastparse and json_format disagree on a {type(message).__name__}"
    return got


@pytest.fixture(autouse=True)
def fastparse_agrees_with_json_format(monkeypatch):
    monkeypatch.setattr(fastparse, "parse", _checked_parse)
