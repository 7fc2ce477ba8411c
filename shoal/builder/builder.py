"""`Builder`: a Dockerfile and a context in, an OCI image in the content store out.

Plan: parse (dockerfile.py), pick the target stage and the stages it reads (FROM
<stage>, COPY --from), number their steps, then run every needed stage as an asyncio
task; a stage waits only for the stages it reads, so independent stages build in
parallel. Each step turns a `StageState` into the next:

- metadata instructions change the config (metadata.py);
- RUN mounts an overlay snapshot whose lower layers are the parent chain, runs the
  command in a runc container (host network, the host's pip config), unmounts, drops
  runc's mount-point stubs and tars the upper dir (whiteouts, sorted, mtimes clamped
  to SOURCE_DATE_EPOCH) into a layer;
- COPY/ADD copy into such a snapshot (so parents, chown and whiteouts behave as in a
  RUN) and tar its upper dir the same way.

RUN/COPY/ADD are looked up in the layer cache first (cache.py) with key =
chain(parent chain, instruction with args/env resolved, content hash of what it reads).

Failure and Ctrl-C: every container and snapshot a build creates is recorded in its
`Scratch` (scratch.py) and removed in a `finally` (shielded from cancellation); the image is
committed and tagged only after every stage succeeded, so a failed build leaves no tag.
Blocking work (mount, tar, copy, hashing) runs in threads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import os
import posixpath
import stat
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from shoal.builder import imageconfig as ic
from shoal.builder import fsops, pipconfig
from shoal.builder.cache import LayerCache
from shoal.builder.context import BuildContext
from shoal.builder.dockerfile import Instruction, Stage, parse, shell_words
from shoal.builder.errors import (
    BuildError, BuildOptionError, ContextError, DockerfileSyntaxError, StepFailed, UnknownStage,
)
from shoal.builder.expand import expand
from shoal.builder.metadata import METADATA, apply_metadata, command_words, workdir_of
from shoal.builder.progress import PlainProgress, Progress
from shoal.builder.runmounts import RunMount, parse_mount, runtime_mounts
from shoal.builder.scratch import Scratch
from shoal.builder.stages import select_stages
from shoal.builder.sources import fetch_url, source_items
from shoal.images import Image, ImageError, ImageStore, mediatypes, mounts, registry
from shoal.images.layerfile import store_layer_tar, write_diff_tar
from shoal.runtime import (
    NETWORK_HOST, ContainerIntent, Mount, Runtime, RuntimeError_, RuntimeFailure, create_container,
)
from shoal.runtime.spec.users import resolve_user
from shoal.tasks import cancel_and_wait

RUNC_MOUNT_POINTS = ["/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"]
OUTPUT_TAIL = 30


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    context: Path
    dockerfile: Path | None = None
    """Default: <context>/Dockerfile."""
    tags: Sequence[str] = ()
    build_args: Mapping[str, str] = dataclasses.field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    platform: str | None = None
    """Only the host platform (e.g. linux/amd64) is accepted: RUN executes natively."""
    secrets: Mapping[str, Path] = dataclasses.field(default_factory=dict)
    """--secret id=ID,src=FILE: ID -> host file, bound read-only by RUN --mount=type=secret."""
    epoch: int | None = None
    """SOURCE_DATE_EPOCH for history times and layer mtimes; default the env var, else 0."""
    host_pip_config: bool = True
    """Give RUN containers the host's pip configuration (index, mirrors, cert)."""
    pull: bool = True
    """Pull a FROM / COPY --from image that is not in the store (docker's --pull=missing)."""
    tls_verify: bool = True
    """False: plain HTTP / unverified TLS for pulls (local registries)."""


@dataclasses.dataclass(frozen=True)
class BuildResult:
    image: Image
    steps: int
    cache_hits: int
    """RUN/COPY/ADD steps taken from the cache."""
    layers_built: int
    """RUN/COPY/ADD steps executed."""
    seconds: float


@dataclasses.dataclass
class _Step:
    number: int
    stage: Stage
    ins: Instruction | None  # None: the FROM line

    @property
    def title(self) -> str:
        n = len(self.stage.instructions) + 1
        i = 1 if self.ins is None else self.stage.instructions.index(self.ins) + 2
        text = f"FROM {self.stage.base}" if self.ins is None else self.ins.source
        return f"[{self.stage.label} {i}/{n}] {text}"


class Builder:
    """Builds images into `store`; RUN containers live under `runtime`'s root."""

    def __init__(self, store: ImageStore, runtime: Runtime, cache_dir: Path, progress: Progress | None = None):
        self.store = store
        self.runtime = runtime
        self.cache = LayerCache(cache_dir)
        self.progress = progress or PlainProgress()
        self._pip: tuple[dict[str, str], list[str]] | None = None

    # -- entry point ------------------------------------------------------------------

    async def build(self, options: BuildOptions) -> BuildResult:
        t0 = time.monotonic()
        run = _BuildRun(self, options)
        try:
            image = await run.execute()
        finally:
            await asyncio.shield(run.scratch.remove_all())
        return BuildResult(image, run.step_count, run.hits, run.built, time.monotonic() - t0)

    def pip_config(self) -> tuple[dict[str, str], list[str]]:
        if self._pip is None:
            settings = pipconfig.pip_settings()
            self._pip = (pipconfig.pip_env(settings), pipconfig.pip_mounts(settings))
        return self._pip


def _host_platform() -> str:
    plat = mediatypes.host_platform()
    return f"{plat['os']}/{plat['architecture']}" + (f"/{plat['variant']}" if plat.get("variant") else "")


class _BuildRun:
    """One build: its options, scratch resources, counters and per-stage results."""

    def __init__(self, builder: Builder, options: BuildOptions):
        self.b = builder
        self.store = builder.store
        self.opts = options
        self.scratch = Scratch(builder.store, builder.runtime)
        self.epoch = options.epoch if options.epoch is not None else int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
        self.hits = 0
        self.built = 0
        self.step_count = 0
        self.results: dict[int, asyncio.Future] = {}
        self.steps: dict[tuple[int, int], _Step] = {}
        self.pull_locks: dict[str, asyncio.Lock] = {}

    # -- plan --------------------------------------------------------------------------

    async def execute(self) -> Image:
        opts = self.opts
        if opts.platform and opts.platform.rstrip("/") != _host_platform():
            raise BuildOptionError(f"--platform {opts.platform!r}: only the host platform {_host_platform()} "
                                   "can be built (RUN steps execute natively)")
        for sid, path in opts.secrets.items():
            if not Path(path).is_file():
                raise BuildOptionError(f"--secret id={sid}: file {path} does not exist")
        dockerfile_path = Path(opts.dockerfile) if opts.dockerfile else Path(opts.context) / "Dockerfile"
        try:
            text = dockerfile_path.read_text()
        except OSError as exc:
            raise BuildOptionError(f"Dockerfile {dockerfile_path}: {exc.strerror or exc}") from None
        self.context = await asyncio.to_thread(BuildContext, Path(opts.context))
        self.df = parse(text)
        self.global_vars = self._global_args()
        stages = select_stages(self.df, opts.target, self.global_vars)
        number = 0
        for stage in stages:
            for ins in (None, *stage.instructions):
                number += 1
                self.steps[(stage.index, -1 if ins is None else stage.instructions.index(ins))] = \
                    _Step(number, stage, ins)
        self.step_count = number
        loop = asyncio.get_running_loop()
        self.results = {s.index: loop.create_future() for s in stages}
        tasks = [asyncio.create_task(self._stage_task(s), name=f"build-stage-{s.label}") for s in stages]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            await cancel_and_wait(tasks)
            raise
        final: ic.StageState = self.results[stages[-1].index].result()
        return await asyncio.to_thread(self._commit, final)

    def _global_args(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for ins in self.df.global_args:
            for name, default in self._arg_pairs(ins, values):
                if name in self.opts.build_args:
                    values[name] = self.opts.build_args[name]
                elif default is not None:
                    values[name] = default
        return values

    def _arg_pairs(self, ins: Instruction, variables: Mapping[str, str]) -> list[tuple[str, str | None]]:
        pairs = []
        for word in shell_words(ins.value, ins.line, "ARG"):
            name, sep, default = word.partition("=")
            if not name or not name.replace("_", "a").isalnum():
                raise DockerfileSyntaxError(f"bad argument name {name!r}", ins.line, "ARG")
            pairs.append((name, self._expand(ins, default, variables) if sep else None))
        return pairs

    def _expand(self, ins: Instruction, text: str, variables: Mapping[str, str]) -> str:
        try:
            return expand(text, variables)
        except ValueError as exc:
            raise DockerfileSyntaxError(str(exc), ins.line, ins.keyword) from None

    def _commit(self, state: ic.StageState) -> Image:
        tags = list(self.opts.tags)
        image = self.store.commit_image(ic.final_config(state), list(state.layers), tags[0] if tags else None)
        for tag in tags[1:]:
            image = self.store.tag(image.digest, tag)
        return image

    # -- stages ------------------------------------------------------------------------

    async def _stage_task(self, stage: Stage) -> None:
        future = self.results[stage.index]
        try:
            state = await self._run_stage(stage)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: the gather reports it
            raise
        future.set_result(state)

    async def _stage_state(self, ref: str, ins_line: int, keyword: str) -> ic.StageState | None:
        stage = self.df.stage(ref)
        if stage is None or stage.index not in self.results:
            return None
        return await asyncio.shield(self.results[stage.index])

    async def _run_stage(self, stage: Stage) -> ic.StageState:
        step = self.steps[(stage.index, -1)]
        self.b.progress.start(step.number, step.title)
        base = self._expand(Instruction("FROM", stage.line, {}, stage.base), stage.base, self.global_vars)
        state = await self._base_state(base, stage)
        self.b.progress.done(step.number)
        args: dict[str, str] = {}
        cmd_set = False
        for i, ins in enumerate(stage.instructions):
            step = self.steps[(stage.index, i)]
            self.b.progress.start(step.number, step.title)
            variables = {**args, **state.env()}
            try:
                if ins.keyword == "ARG":
                    for name, default in self._arg_pairs(ins, variables):
                        if name in self.opts.build_args:
                            args[name] = self.opts.build_args[name]
                        elif default is not None:
                            args[name] = default
                        elif name in self.global_vars:
                            args[name] = self.global_vars[name]
                        state = ic.StageState(ic.chain_id(state.chain, "ARG", name, args.get(name)),
                                              state.layers, state.config)
                    self.b.progress.done(step.number)
                    continue
                if ins.keyword in METADATA:
                    state = apply_metadata(state, ins, variables, self.epoch, cmd_set)
                    cmd_set = cmd_set or ins.keyword == "CMD"
                    self.b.progress.done(step.number)
                    continue
                if ins.keyword == "RUN":
                    state = await self._run(step, state, ins, args)
                else:
                    state = await self._copy(step, state, ins, variables)
            except BuildError as exc:
                self.b.progress.failed(step.number, exc.detail)
                raise
            except (ImageError, RuntimeError_, OSError) as exc:
                self.b.progress.failed(step.number, str(exc))
                raise BuildError(str(exc), ins.line, ins.keyword) from exc
        return state

    async def _base_state(self, base: str, stage: Stage) -> ic.StageState:
        if base == "scratch":
            return ic.StageState(ic.chain_id("scratch"), (), ic.scratch_config())
        earlier = self.df.stage(base)
        if earlier is not None and earlier.index < stage.index:
            parent = await self._stage_state(base, stage.line, "FROM")
            config = copy.deepcopy(parent.config)
            return ic.StageState(parent.chain, parent.layers, config)
        image = await self._image(base, stage.line, "FROM")
        layers = tuple((d["digest"], diff, int(d["size"]), d["mediaType"])
                       for d, diff in zip(image.layer_descriptors, image.diff_ids))
        config = copy.deepcopy(image.raw_config)
        config.setdefault("history", [])
        return ic.StageState(image.digest, layers, config)

    async def _image(self, ref: str, line: int, keyword: str) -> Image:
        """An image from the store, pulled first if missing (once per build and ref)."""
        async with self.pull_locks.setdefault(ref, asyncio.Lock()):
            try:
                return await asyncio.to_thread(self.store.resolve, ref)
            except ImageError as exc:
                if not self.opts.pull:
                    raise BuildError(f"image {ref!r}: {exc}", line, keyword) from None
                missing = exc
            self.b.progress.info(f"pulling {ref}")
            try:
                return await registry.pull(self.store, ref, insecure=not self.opts.tls_verify)
            except (ImageError, OSError) as exc:
                raise BuildError(f"image {ref!r}: {missing}; pulling it failed: {exc}", line, keyword) from None

    # -- cache -------------------------------------------------------------------------

    def _cached(self, key: str) -> dict | None:
        if self.opts.no_cache:
            return None
        return self.b.cache.get(key, self.store)

    def _apply(self, state: ic.StageState, key: str, ins: Instruction, layer, created_by: str) -> ic.StageState:
        return ic.with_history(state, created_by, self.epoch, empty_layer=layer is None,
                               layer=tuple(layer) if layer else None, chain=key)

    # -- RUN ---------------------------------------------------------------------------

    async def _run(self, step: _Step, state: ic.StageState, ins: Instruction, args: Mapping[str, str]) -> ic.StageState:
        rt = state.runtime
        shell = rt.get("Shell") or ic.DEFAULT_SHELL
        argv = command_words(ins, shell)
        workdir = workdir_of(state)
        run_mounts = [parse_mount(m, ins.line, workdir) for m in ins.flags.get("mount", [])]
        network = ins.flag("network", "default")
        if network not in ("default", "host", "none"):
            raise DockerfileSyntaxError(f"--network={network!r}: expected default, host or none", ins.line, "RUN")
        env = {**args, **state.env()}
        for m in run_mounts:
            if m.type == "secret" and m.id not in self.opts.secrets and m.required:
                raise BuildError(f"secret {m.id!r} is required but was not given (--secret id={m.id},src=FILE)",
                                 ins.line, "RUN")
        bind_hashes = []
        for m in run_mounts:
            if m.type == "bind":
                rels = await asyncio.to_thread(self.context.sources, m.source or ".", ins.line, "RUN")
                bind_hashes.append(await asyncio.to_thread(self.context.content_hash, rels))
        key = ic.chain_id(state.chain, "RUN", argv, sorted(env.items()), workdir, rt.get("User"),
                          [m.cache_key_part() for m in run_mounts], bind_hashes, network)
        created_by = ins.source if ins.exec_form is not None else f"RUN {' '.join(argv)}"
        hit = self._cached(key)
        if hit is not None:
            self.hits += 1
            self.b.progress.cached(step.number)
            return self._apply(state, key, ins, hit["layer"], created_by)
        layer = await self._run_container(step, state, ins, argv, env, workdir, run_mounts, network)
        self.b.cache.put(key, layer)
        self.built += 1
        self.b.progress.done(step.number)
        return self._apply(state, key, ins, layer, created_by)

    async def _run_container(self, step: _Step, state: ic.StageState, ins: Instruction, argv: list[str],
                             env: dict[str, str], workdir: str, run_mounts: list[RunMount],
                             network: str):
        key = self.scratch.new_key(step.number)
        mounts_: list[Mount] = []
        run_env = dict(env)
        if self.opts.host_pip_config:
            pip_env, pip_paths = await asyncio.to_thread(self.b.pip_config)
            for name, value in pip_env.items():
                run_env.setdefault(name, value)
            mounts_ += [Mount(p, p, read_only=True) for p in pip_paths]
        mounts_ += runtime_mounts(run_mounts, cache_dir=self.b.cache.mount_dir, secrets=self.opts.secrets,
                                  context_root=self.context.root)
        destinations = RUNC_MOUNT_POINTS + [m.destination for m in mounts_]
        existed: set[str] = set()
        cid = key
        log_dir = tempfile.mkdtemp(prefix="shoal-build-log-")
        self.scratch.tmpdirs.add(log_dir)

        async def build_intent(rootfs: Path) -> ContainerIntent:
            def before() -> set[str]:
                fsops.make_dirs(rootfs, workdir, 0, 0, chown_new=False)
                return {d for d in destinations if os.path.lexists(fsops.resolve_in_root(rootfs, d))}

            existed.update(await asyncio.to_thread(before))
            return ContainerIntent(
                id=cid, rootfs=rootfs, command=argv, env=run_env, working_dir=workdir,
                user=state.runtime.get("User") or None, hostname="shoal-build", mounts=tuple(mounts_),
                network=NETWORK_HOST if network != "none" else "none",
                log_path=Path(log_dir) / "run.log", labels={"io.shoal.build": "true"},
            )

        tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL)
        # recorded first: a Ctrl-C during the create still finds them in the scratch list
        self.scratch.snapshots.add(key)
        self.scratch.containers.add(cid)
        try:
            await create_container(self.b.runtime, build_intent, {}, snapshots=self.store.snapshots, key=key,
                                   image=ic.layered(state), start=True)
        except RuntimeFailure as exc:
            raise BuildError(f"could not start the RUN container: {exc}", ins.line, "RUN") from None

        async def follow() -> None:
            async for line in self.b.runtime.logs(cid, follow=True):
                tail.append(line.text)
                self.b.progress.output(step.number, line.text)

        follower = asyncio.create_task(follow())
        try:
            status = await self.b.runtime.wait(cid)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(follower), 2.0)
        finally:
            await cancel_and_wait(follower)
            await self.scratch.remove_container(cid)
        if status.exit_code != 0:
            output = "\n".join(tail)
            raise StepFailed(f"`{' '.join(argv)}` exited with code {status.exit_code}"
                             + (f"; last output:\n{output}" if output else ""),
                             ins.line, "RUN", status.exit_code, output)
        return await asyncio.to_thread(self._diff_to_layer, key, destinations, existed)

    def _diff_to_layer(self, key: str, destinations: list[str] | None = None, existed: set[str] | None = None):
        """Unmount snapshot `key`, drop mount stubs, tar its upper dir, store, remove."""
        mounts.unmount(self.store.snapshots.rootfs(key))
        upper = self.store.snapshots.diff(key)
        if destinations:
            fsops.prune_mount_stubs(upper, destinations, existed or set())
        try:
            if not any(os.scandir(upper)):
                return None
            fd, tar_name = tempfile.mkstemp(dir=self.store.paths.ingest, prefix="build-diff-")
            os.close(fd)
            try:
                write_diff_tar(upper, Path(tar_name), self.epoch)
                return store_layer_tar(self.store, Path(tar_name), compress=True)
            finally:
                os.unlink(tar_name)
        finally:
            self.store.snapshots.remove(key)
            self.scratch.snapshots.discard(key)

    # -- COPY / ADD --------------------------------------------------------------------

    async def _copy(self, step: _Step, state: ic.StageState, ins: Instruction,
                    variables: Mapping[str, str]) -> ic.StageState:
        kw = ins.keyword
        words = ins.exec_form if ins.exec_form is not None else shell_words(
            self._expand(ins, ins.value, variables), ins.line, kw)
        if ins.exec_form is not None:
            words = [self._expand(ins, w, variables) for w in words]
        if len(words) < 2:
            raise DockerfileSyntaxError("expects at least one source and a destination", ins.line, kw)
        sources, dest = words[:-1], words[-1]
        dest_path = posixpath.join(workdir_of(state), dest)
        dest_is_dir = dest.endswith("/") or len(sources) > 1
        chown, chmod = ins.flag("chown"), ins.flag("chmod")
        mode = None
        if chmod:
            try:
                mode = int(chmod, 8)
            except ValueError:
                raise DockerfileSyntaxError(f"--chmod={chmod!r}: expected octal like 0755", ins.line, kw) from None
        from_ref = ins.flag("from")
        src_key = None
        src_root: Path | None = None
        url_files: list[Path] = []
        if from_ref:
            from_ref = self._expand(ins, from_ref, variables)
            src_state = await self._stage_state(from_ref, ins.line, kw)
            if src_state is None:
                try:
                    image = await self._image(from_ref, ins.line, kw)
                except BuildError as exc:
                    raise UnknownStage(f"--from={from_ref!r}: no such stage in this Dockerfile, and as an "
                                       f"image: {exc.detail}", ins.line, kw) from None
                layers = tuple((d["digest"], diff, int(d["size"]), d["mediaType"])
                               for d, diff in zip(image.layer_descriptors, image.diff_ids))
                src_state = ic.StageState(image.digest, layers, image.raw_config)
            src_key = self.scratch.new_key(step.number) + "-src"
            self.scratch.snapshots.add(src_key)
            src_root = await asyncio.to_thread(self.store.snapshots.prepare, src_key, ic.layered(src_state))
            content = ic.chain_id(src_state.chain, sources)
        else:
            content_parts = []
            for src in sources:
                if src.startswith(("http://", "https://")):
                    if kw != "ADD":
                        raise ContextError(f"source {src!r}: COPY cannot fetch URLs (use ADD --checksum)", ins.line, kw)
                    checksum = ins.flag("checksum")
                    if not checksum or not checksum.startswith("sha256:"):
                        raise DockerfileSyntaxError(f"source {src!r}: a remote ADD needs --checksum=sha256:<hex>",
                                                    ins.line, kw)
                    content_parts.append([src, checksum])
                else:
                    rels = await asyncio.to_thread(self.context.sources, src, ins.line, kw)
                    content_parts.append(await asyncio.to_thread(self.context.content_hash, rels))
            content = ic.chain_id(content_parts)
        key = ic.chain_id(state.chain, kw, sources, dest_path, dest_is_dir, chown, chmod, content)
        created_by = f"{kw} {' '.join(sources)} {dest_path}" + (f" (--from={from_ref})" if from_ref else "")
        try:
            hit = self._cached(key)
            if hit is not None:
                self.hits += 1
                self.b.progress.cached(step.number)
                return self._apply(state, key, ins, hit["layer"], created_by)
            for src in sources:
                if src.startswith(("http://", "https://")):
                    tmp = tempfile.mkdtemp(prefix="shoal-build-add-")
                    self.scratch.tmpdirs.add(tmp)
                    url_files.append(await asyncio.to_thread(fetch_url, src, ins.flag("checksum"), ins, Path(tmp)))
            layer = await self._copy_layer(step, state, ins, sources, dest_path, dest_is_dir, chown, mode,
                                           src_root, url_files)
        finally:
            if src_key:
                await self.scratch.remove_snapshot(src_key)
        self.b.cache.put(key, layer)
        self.built += 1
        self.b.progress.done(step.number)
        return self._apply(state, key, ins, layer, created_by)

    async def _copy_layer(self, step, state, ins, sources, dest_path, dest_is_dir, chown, mode, src_root, url_files):
        key = self.scratch.new_key(step.number)
        self.scratch.snapshots.add(key)
        rootfs = await asyncio.to_thread(self.store.snapshots.prepare, key, ic.layered(state))

        def work():
            uid, gid = 0, 0
            if chown:
                try:
                    user = resolve_user(rootfs, chown, field="--chown")
                except RuntimeError_ as exc:
                    raise BuildError(str(exc), ins.line, ins.keyword) from None
                # Docker: a user without a group gets the same number as gid
                uid, gid = user.uid, (user.gid if ":" in chown else user.uid)
            target = fsops.resolve_in_root(rootfs, dest_path)
            into_dir = dest_is_dir or (target.is_dir() and not dest_path.endswith("/.."))
            entries: list[tuple[Path, str, os.stat_result]] = []
            local_files = [p for p in url_files]
            for src in sources:
                if src.startswith(("http://", "https://")):
                    continue
                for host, rel_name, walk in source_items(self.context, src, src_root, ins):
                    top_st = os.lstat(host)
                    if stat.S_ISDIR(top_st.st_mode):
                        fsops.make_dirs(rootfs, dest_path, uid, gid, chown_new=bool(chown))
                        for child_host, child_rel, st in walk:
                            if child_rel == ".":
                                continue
                            entries.append((child_host, posixpath.join(dest_path, child_rel), st))
                    elif ins.keyword == "ADD" and src_root is None and fsops.is_archive(host):
                        fsops.extract_tar(host, rootfs, dest_path, uid if chown else None, gid if chown else None)
                    else:
                        name = posixpath.join(dest_path, rel_name) if into_dir else dest_path
                        entries.append((host, name, top_st))
            for host in local_files:
                name = posixpath.join(dest_path, host.name) if into_dir else dest_path
                entries.append((host, name, os.lstat(host)))
            if into_dir:
                fsops.make_dirs(rootfs, dest_path, uid, gid, chown_new=bool(chown))
            fsops.copy_in(entries, rootfs, uid, gid, mode)

        await asyncio.to_thread(work)
        return await asyncio.to_thread(self._diff_to_layer, key)
