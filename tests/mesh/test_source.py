"""ClusterSource conformance for the in-memory implementation."""

from __future__ import annotations

from shoal.mesh.source import InMemorySource
from tests.mesh.source_conformance import check_source


async def test_in_memory_source_conforms():
    source = InMemorySource()

    async def put(kind, obj):
        source.put(kind, obj)

    async def delete(kind, ns, name):
        source.delete(kind, ns, name)

    await check_source(source, put, delete)
