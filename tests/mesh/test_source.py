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


async def test_api_source_conforms(tmp_path):
    """The daemon's source: informers over the API (here the in-process LocalClient)."""
    from shoal.apiserver.local import LocalClient
    from shoal.mesh import kinds
    from shoal.mesh.apisource import ApiSource

    kinds.register_kinds()
    async with LocalClient.open(tmp_path / "store.db") as client:
        source = ApiSource(client, retry_seconds=0.1)
        await source.start()
        try:
            async def put(kind, obj):
                await client.create(kind, obj)

            async def delete(kind, ns, name):
                await client.delete(kind, ns, name)

            await check_source(source, put, delete)
        finally:
            await source.stop()
