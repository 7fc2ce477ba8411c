from __future__ import annotations

import ssl

import httpx
import pytest

from tests.daemon_harness import ShoalInstance


@pytest.fixture(scope="package")
def shoal(tmp_path_factory):
    instance = ShoalInstance(tmp_path_factory.mktemp("shoal-api")).start()
    yield instance
    instance.stop()


@pytest.fixture
def api(shoal):
    with httpx.Client(base_url=shoal.url, verify=ssl.create_default_context(cafile=shoal.ca),
                      headers={"Authorization": f"Bearer {shoal.token}"}, timeout=30) as client:
        yield client
