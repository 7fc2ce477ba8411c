"""Probe handlers against real local servers on loopback: HTTP status codes, TCP refusal,
gRPC health (grpcio server with the standard health service method), exec results."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from aiohttp import web

from shoal.node import probes

CONTAINER = {"name": "app", "ports": [{"name": "http", "containerPort": 0}]}


async def no_exec(args, timeout):
    raise AssertionError("exec not expected")


@pytest.fixture
async def http_server():
    async def ok(request):
        return web.Response(text="ok")

    async def broken(request):
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/healthz", ok)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield port
    await runner.cleanup()


async def test_http_get_by_named_port_and_status(http_server):
    container = {"name": "app", "ports": [{"name": "http", "containerPort": http_server}]}
    ok = await probes.run_handler({"httpGet": {"path": "/healthz", "port": "http"}}, host="127.0.0.1",
                                  container=container, timeout=1, exec_runner=no_exec)
    assert ok.success
    bad = await probes.run_handler({"httpGet": {"path": "/broken", "port": http_server}}, host="127.0.0.1",
                                   container=container, timeout=1, exec_runner=no_exec)
    assert not bad.success and bad.message == "HTTP probe failed with statuscode: 500"


async def test_tcp_refused_names_the_address():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    result = await probes.run_handler({"tcpSocket": {"port": port}}, host="127.0.0.1", container=CONTAINER,
                                      timeout=1, exec_runner=no_exec)
    assert not result.success and f"127.0.0.1:{port}" in result.message


async def test_exec_output_is_the_failure_message():
    async def runner(args, timeout):
        return 1, b"", b"not healthy\n"

    result = await probes.run_handler({"exec": {"command": ["check"]}}, host="x", container=CONTAINER,
                                      timeout=1, exec_runner=runner)
    assert (result.success, result.message) == (False, "not healthy")


@pytest.mark.parametrize("serving, expected", [(1, True), (2, False)])
async def test_grpc_health_check(serving, expected):
    seen = []

    def check(request: bytes, context) -> bytes:
        seen.append(request)
        return bytes([0x08, serving])

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=lambda b: b,
                                                     response_serializer=lambda b: b)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        result = await probes.run_handler({"grpc": {"port": port, "service": "web"}}, host="127.0.0.1",
                                          container=CONTAINER, timeout=2, exec_runner=no_exec)
    finally:
        await server.stop(None)
    assert result.success is expected
    assert seen == [b"\x0a\x03web"]
    if not expected:
        assert "NOT_SERVING" in result.message
