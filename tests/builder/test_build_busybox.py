"""End-to-end builds on a busybox base with real runc: stages, cache, secrets, args,
.dockerignore, COPY/ADD forms, the image config, interop and failures."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile

import pytest

from shoal.builder import (
    BuildError, ContextError, DockerfileSyntaxError, StepFailed, UnknownStage, UnsupportedInstruction,
)
from shoal.images import ImageNotFound

from tests.builder.conftest import write_context


async def test_multi_stage_copies_only_the_artifact_into_the_final_stage(benv, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": """\
FROM busybox AS build
RUN mkdir -p /out && echo "built artifact" > /out/app.txt && echo junk > /junk
FROM busybox AS unused
RUN echo never > /never
FROM busybox
COPY --from=build /out/app.txt /srv/app.txt
CMD ["cat", "/srv/app.txt"]
"""})
    result = await benv.build(ctx, tags=["localhost/multi:1"])
    busybox = benv.store.resolve("busybox")
    image = result.image
    assert image.layers[:1] == busybox.layers and len(image.layers) == 2
    assert [name for name, _ in benv.layer_members("localhost/multi:1")[1]] == ["srv", "srv/app.txt"]
    assert "unused" not in benv.log.getvalue()  # a stage nobody reads is not built
    code, out = await benv.run_image("localhost/multi:1")
    assert (code, out) == (0, "built artifact\n")
    assert benv.leftovers() == {"snapshots": [], "mounts": [], "containers": []}


async def test_source_change_rebuilds_only_the_steps_after_its_copy(benv, tmp_path):
    ctx = write_context(tmp_path, {
        "Dockerfile": "FROM busybox\nRUN echo base > /base\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nRUN cat /a.txt /b.txt > /ab\n",
        "a.txt": "one\n", "b.txt": "bee\n"})
    first = await benv.build(ctx, tags=["localhost/chg:1"])
    assert (first.cache_hits, first.layers_built) == (0, 4)
    again = await benv.build(ctx, tags=["localhost/chg:1"])
    assert (again.cache_hits, again.layers_built) == (4, 0)
    assert again.image.digest == first.image.digest  # reproducible: same bytes, same digest
    (ctx / "b.txt").write_text("changed\n")
    third = await benv.build(ctx, tags=["localhost/chg:1"])
    assert (third.cache_hits, third.layers_built) == (2, 2)
    assert third.image.layers[:3] == first.image.layers[:3]
    code, out = await benv.run_image("localhost/chg:1", ["cat", "/ab"])
    assert out == "one\nchanged\n"
    fresh = await benv.build(ctx, tags=["localhost/chg:1"], no_cache=True)
    assert (fresh.cache_hits, fresh.layers_built) == (0, 4)
    assert fresh.image.digest == third.image.digest  # SOURCE_DATE_EPOCH: a rerun is byte-identical


async def test_secret_is_readable_in_run_and_absent_from_every_layer(benv, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value-42")
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": """\
FROM busybox
RUN --mount=type=secret,id=token cp /run/secrets/token /tmp/copy && wc -c < /run/secrets/token > /len && rm /tmp/copy
RUN --mount=type=secret,id=token,target=/etc/tok grep -c value-42 /etc/tok > /found
"""})
    await benv.build(ctx, tags=["localhost/secret:1"], secrets={"token": secret})
    code, out = await benv.run_image("localhost/secret:1", ["cat", "/len", "/found"])
    assert out.split() == ["15", "1"]
    for layer in benv.layer_members("localhost/secret:1"):
        for name, data in layer:
            assert b"s3cr3t-value-42" not in data and "run/secrets" not in name and name != "etc/tok"
    image = benv.store.resolve("localhost/secret:1")
    assert b"s3cr3t-value-42" not in benv.store.blob_path(image.id).read_bytes()


async def test_cache_mount_persists_between_builds_outside_layers(benv, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": """\
FROM busybox
RUN --mount=type=cache,target=/var/cache/thing sh -c 'ls /var/cache/thing > /seen; date +%s%N > /var/cache/thing/$(date +%s%N)'
"""})
    await benv.build(ctx, tags=["localhost/cachemount:1"])
    await benv.build(ctx, tags=["localhost/cachemount:1"], no_cache=True)
    code, out = await benv.run_image("localhost/cachemount:1", ["cat", "/seen"])
    assert len(out.split()) == 1  # the second build saw the file the first one left
    names = [n for layer in benv.layer_members("localhost/cachemount:1")[1:] for n, _ in layer]
    assert not any(n.startswith("var/cache/thing/") for n in names)


async def test_build_arg_changes_the_result(benv, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": """\
ARG BASE=busybox
FROM ${BASE}
ARG FLAVOR=plain
ENV FLAVOR_ENV=${FLAVOR}-env
RUN echo "$FLAVOR" > /flavor
"""})
    plain = await benv.build(ctx, tags=["localhost/args:plain"])
    spicy = await benv.build(ctx, tags=["localhost/args:spicy"], build_args={"FLAVOR": "spicy"})
    assert plain.image.digest != spicy.image.digest
    assert (await benv.run_image("localhost/args:spicy", ["cat", "/flavor"]))[1] == "spicy\n"
    assert (await benv.run_image("localhost/args:plain", ["cat", "/flavor"]))[1] == "plain\n"
    assert "FLAVOR_ENV=spicy-env" in spicy.image.config["Env"]
    assert not any(e.startswith("FLAVOR=") for e in spicy.image.config["Env"])  # ARG is not ENV


async def test_dockerignore_excludes_files_from_copy_and_from_the_cache_key(benv, tmp_path):
    ctx = write_context(tmp_path, {
        "Dockerfile": "FROM busybox\nCOPY . /app/\n",
        ".dockerignore": "*.log\nsecret/\n**/*.tmp\n!keep.log\n",
        "main.py": "print(1)\n", "debug.log": "noise", "keep.log": "kept", "secret/key": "k",
        "sub/x.tmp": "t", "sub/y.txt": "y"})
    first = await benv.build(ctx, tags=["localhost/ignore:1"])
    names = {n for n, _ in benv.layer_members("localhost/ignore:1")[1]}
    assert {"app/main.py", "app/keep.log", "app/sub/y.txt", "app/Dockerfile"} <= names
    assert not names & {"app/debug.log", "app/secret", "app/secret/key", "app/sub/x.tmp"}
    (ctx / "debug.log").write_text("more noise")  # ignored files do not bust the cache
    again = await benv.build(ctx, tags=["localhost/ignore:1"])
    assert again.cache_hits == 1 and again.image.digest == first.image.digest


async def test_copy_and_add_forms(benv, tmp_path):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"from the tarball\n"
        info = tarfile.TarInfo("pkg/readme")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    ctx = write_context(tmp_path, {
        "Dockerfile": """\
FROM busybox
WORKDIR /work
COPY --chown=1000:1001 ["conf one.txt", "./"]
COPY src/*.txt /globbed/
COPY src /tree
ADD bundle.tar.gz /opt/
ADD --chmod=0600 plain.txt /opt/plain.txt
USER 1000
RUN id -u > /tmp/uid; cp /tmp/uid /work/uid
""",
        "conf one.txt": "c", "src/a.txt": "a", "src/b.txt": "b", "src/c.md": "c",
        "src/deep/d.txt": "d", "bundle.tar.gz": archive.getvalue(), "plain.txt": "p"})
    await benv.build(ctx, tags=["localhost/forms:1"])
    layers = benv.layer_members("localhost/forms:1")
    files = {n for layer in layers for n, _ in layer}
    assert {"work/conf one.txt", "globbed/a.txt", "globbed/b.txt", "tree/a.txt", "tree/deep/d.txt",
            "opt/pkg/readme", "opt/plain.txt", "work/uid"} <= files
    assert "globbed/c.md" not in files and "opt/bundle.tar.gz" not in files
    code, out = await benv.run_image("localhost/forms:1", [
        "sh", "-c", "stat -c '%u:%g' '/work/conf one.txt'; stat -c '%a' /opt/plain.txt; cat /work/uid /opt/pkg/readme"])
    assert out.split("\n")[:4] == ["1000:1001", "600", "1000", "from the tarball"]


async def test_image_config_carries_the_metadata_instructions(benv, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": """\
FROM busybox
ENV A=1 B="two words"
LABEL org.example.team=mesh version="1.0"
EXPOSE 8080 53/udp
USER nobody
WORKDIR /srv
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD wget -q -O- localhost:8080 || exit 1
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $A"]
"""})
    result = await benv.build(ctx, tags=["localhost/meta:1"])
    raw = result.image.raw_config
    config = raw["config"]
    assert {"A=1", "B=two words"} <= set(config["Env"])
    assert config["Labels"] == {"org.example.team": "mesh", "version": "1.0"}
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert (config["User"], config["WorkingDir"], config["StopSignal"]) == ("nobody", "/srv", "SIGINT")
    assert config["Volumes"] == {"/data": {}}
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q -O- localhost:8080 || exit 1"],
                                     "Interval": 5_000_000_000, "Timeout": 2_000_000_000, "Retries": 3}
    assert (config["Entrypoint"], config["Cmd"]) == (["/bin/sh", "-c"], ["echo $A"])
    assert len(raw["history"]) == 1 + 11 and all(h.get("empty_layer") for h in raw["history"][1:])
    assert (await benv.run_image("localhost/meta:1"))[1] == "1\n"


async def test_exported_image_is_read_by_skopeo_and_umoci(benv, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY hello /hello\nLABEL x=y\nCMD [\"cat\", \"/hello\"]\n",
                                           "hello": "interop\n"})
    result = await benv.build(ctx, tags=["localhost/interop:1"])
    archive = tmp_path / "out.tar"
    benv.store.export("localhost/interop:1", archive)
    inspect = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"],
                                        check=True, capture_output=True, text=True).stdout)
    assert inspect["Digest"] == result.image.digest and inspect["Labels"] == {"x": "y"}
    assert len(inspect["Layers"]) == 2
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(layout, filter="data")
    tag = json.loads((layout / "index.json").read_text())["manifests"][0]["annotations"][
        "org.opencontainers.image.ref.name"]
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True, capture_output=True)
    assert (bundle / "rootfs/hello").read_text() == "interop\n"
    assert json.loads((bundle / "config.json").read_text())["process"]["args"] == ["cat", "/hello"]
    shutil.rmtree(bundle)


@pytest.mark.parametrize("dockerfile,files,error,line,needle", [
    ("FROM busybox\nRUN true\nCOPY --bogus=1 a /a\n", {}, DockerfileSyntaxError, 3, "unknown option --bogus"),
    ("FROM busybox\nENV\n", {}, DockerfileSyntaxError, 2, "requires at least one argument"),
    ("FROM busybox\nRUN true\nCOPY missing.txt /x\n", {}, ContextError, 3, "missing.txt"),
    ("FROM busybox\nCOPY --from=nosuch /a /a\n", {}, UnknownStage, 2, "nosuch"),
    ("FROM busybox\nRUN true\nONBUILD RUN true\n", {}, UnsupportedInstruction, 3, "ONBUILD"),
    ("FROM busybox\nFROBNICATE now\n", {}, UnsupportedInstruction, 2, "FROBNICATE"),
    ("FROM busybox\nRUN echo made > /f\nRUN echo to-stdout; echo to-stderr >&2; exit 3\n", {}, StepFailed, 3,
     "exited with code 3"),
])
async def test_bad_input_fails_with_its_line_and_leaves_nothing(benv, tmp_path, dockerfile, files, error, line, needle):
    ctx = write_context(tmp_path, {"Dockerfile": dockerfile, **files})
    with pytest.raises(error) as info:
        await benv.build(ctx, tags=["localhost/bad:1"])
    assert info.value.line == line and needle in str(info.value)
    assert str(info.value).startswith(f"Dockerfile:{line}:")
    if error is StepFailed:
        assert info.value.exit_code == 3
        assert "to-stdout" in info.value.output and "to-stderr" in info.value.output
    with pytest.raises(ImageNotFound):
        benv.store.resolve("localhost/bad:1")
    assert benv.leftovers() == {"snapshots": [], "mounts": [], "containers": []}


async def test_unknown_target_and_foreign_platform_are_refused(benv, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox AS a\nRUN true\n"})
    with pytest.raises(UnknownStage, match="nope"):
        await benv.build(ctx, target="nope")
    with pytest.raises(BuildError, match="platform"):
        await benv.build(ctx, platform="linux/s390x")


async def test_independent_stages_build_in_parallel(benv, tmp_path):
    ctx = write_context(tmp_path, {"Dockerfile": """\
FROM busybox AS left
RUN cut -d' ' -f1 /proc/uptime > /start; sleep 2.5; cut -d' ' -f1 /proc/uptime > /end
FROM busybox AS right
RUN cut -d' ' -f1 /proc/uptime > /start; sleep 2.5; cut -d' ' -f1 /proc/uptime > /end
FROM busybox
COPY --from=left /start /end /left/
COPY --from=right /start /end /right/
"""})
    await benv.build(ctx, tags=["localhost/parallel:1"])
    code, out = await benv.run_image("localhost/parallel:1", ["cat", "/left/start", "/left/end", "/right/start", "/right/end"])
    left_start, left_end, right_start, right_end = map(float, out.split())
    assert left_start < right_end and right_start < left_end  # the two RUNs overlapped
    left = await benv.build(ctx, tags=["localhost/parallel:left"], target="left", platform="linux/amd64")
    assert left.steps == 2 and left.cache_hits == 1  # only the target stage, from the cache
    assert (await benv.run_image("localhost/parallel:left", ["ls", "/"]))[1].split().count("start") == 1


async def test_pinned_digest_and_scratch_bases(benv, tmp_path):
    busybox = benv.store.resolve("busybox")
    ctx = write_context(tmp_path, {
        "Dockerfile": f"FROM busybox@{busybox.digest} AS tools\nRUN echo pinned > /p\n"
                      "FROM scratch\nCOPY --from=tools /p /bin/busybox /\nCOPY note /note\n",
        "note": "n"})
    result = await benv.build(ctx, tags=["localhost/scratch:1"])
    assert len(result.image.layers) == 2
    names = [n for layer in benv.layer_members("localhost/scratch:1") for n, _ in layer]
    assert sorted(names) == ["busybox", "note", "p"]
    assert (await benv.run_image("localhost/scratch:1", ["/busybox", "cat", "/p"]))[1] == "pinned\n"


async def test_add_url_needs_a_checksum_and_verifies_it(benv, tmp_path):
    import hashlib
    import http.server
    import threading

    served = tmp_path / "www"
    served.mkdir()
    (served / "tool.txt").write_bytes(b"remote tool\n")
    digest = "sha256:" + hashlib.sha256(b"remote tool\n").hexdigest()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/tool.txt"
    try:
        ctx = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM busybox\nADD --checksum={digest} {url} /opt/\n"})
        await benv.build(ctx, tags=["localhost/addurl:1"])
        assert (await benv.run_image("localhost/addurl:1", ["cat", "/opt/tool.txt"]))[1] == "remote tool\n"
        (ctx / "Dockerfile").write_text(f"FROM busybox\nADD {url} /opt/\n")
        with pytest.raises(DockerfileSyntaxError, match="--checksum") as info:
            await benv.build(ctx)
        assert info.value.line == 2
        (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN true\nADD --checksum=sha256:{'0' * 64} {url} /opt/\n")
        with pytest.raises(BuildError, match="checksum mismatch"):
            await benv.build(ctx)
    finally:
        server.shutdown()
    assert benv.leftovers() == {"snapshots": [], "mounts": [], "containers": []}


async def test_cancelling_a_build_removes_its_container_and_snapshot(benv, tmp_path):
    import asyncio

    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    task = asyncio.create_task(benv.build(ctx, tags=["localhost/cancelled:1"]))
    for _ in range(200):  # until the RUN container is up
        await asyncio.sleep(0.05)
        if "started" in benv.log.getvalue():
            break
    assert benv.leftovers()["containers"], "the RUN container should be running"
    task.cancel()  # what Ctrl-C does to `asyncio.run(build)`
    with pytest.raises(asyncio.CancelledError):
        await task
    assert benv.leftovers() == {"snapshots": [], "mounts": [], "containers": []}
    with pytest.raises(ImageNotFound):
        benv.store.resolve("localhost/cancelled:1")


async def test_missing_base_is_pulled_from_a_registry(benv, tmp_path):
    from tests.images.registry_fixtures import Registry

    archive = tmp_path / "busybox.tar"
    benv.store.export("busybox", archive)
    reg = Registry(tmp_path / "registry")
    try:
        reg.seed(archive, "shoal/busybox:v1")
        ref = f"{reg.host}/shoal/busybox:v1"
        ctx = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {ref}\nRUN echo pulled > /p\n"})
        with pytest.raises(BuildError, match="not in the store") as info:
            await benv.build(ctx, pull=False)
        assert info.value.line == 1
        await benv.build(ctx, tags=["localhost/pulled:1"], pull=True, tls_verify=False)
        assert "pulling" in benv.log.getvalue()
        assert benv.store.resolve(ref).layers == benv.store.resolve("busybox").layers
        assert (await benv.run_image("localhost/pulled:1", ["cat", "/p"]))[1] == "pulled\n"
    finally:
        reg.close()


async def test_add_refuses_an_archive_that_escapes(benv, tmp_path):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    ctx = write_context(tmp_path, {"Dockerfile": "FROM busybox\nADD evil.tar /opt/\n", "evil.tar": archive.getvalue()})
    with pytest.raises(BuildError, match="evil.tar") as info:
        await benv.build(ctx)
    assert info.value.line == 2 and not (tmp_path / "escape").exists()
    assert benv.leftovers() == {"snapshots": [], "mounts": [], "containers": []}
