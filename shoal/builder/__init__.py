"""shoal.builder: `shoal build` — Dockerfile + context -> OCI image in the content store.

    builder = Builder(ImageStore(settings.images_dir),
                      Runtime(build_root, cgroup_parent="shoal-build"),
                      cache_dir=settings.state_dir / "build" / "cache")
    result = await builder.build(BuildOptions(context=Path("."), tags=["localhost/app:1"]))
    result.image, result.cache_hits, result.layers_built

Modules: dockerfile (parse, pure), expand (variables, pure), metadata (config
instructions, pure), imageconfig (stage state, pure), runmounts (RUN --mount, pure),
stages (which stages a target needs, pure), context (.dockerignore, hashing), sources
(COPY/ADD sources, ADD URLs), pipconfig (host pip settings for RUN), fsops (copy and
stub pruning inside a rootfs), cache (layer cache), progress (rich/plain), scratch
(what a build must clean up), builder (planning, RUN/COPY/ADD execution; RUN containers
through `shoal.runtime.create_container`).
"""

from shoal.builder.builder import Builder, BuildOptions, BuildResult
from shoal.builder.stages import select_stages
from shoal.builder.dockerfile import Dockerfile, Instruction, Stage, parse
from shoal.builder.errors import (
    BuildError,
    BuildOptionError,
    ContextError,
    DockerfileSyntaxError,
    StepFailed,
    UnknownStage,
    UnsupportedInstruction,
)
from shoal.builder.progress import PlainProgress, Progress, RichProgress, make_progress

__all__ = [
    "BuildError",
    "BuildOptionError",
    "BuildOptions",
    "BuildResult",
    "Builder",
    "ContextError",
    "Dockerfile",
    "DockerfileSyntaxError",
    "Instruction",
    "PlainProgress",
    "Progress",
    "RichProgress",
    "Stage",
    "StepFailed",
    "UnknownStage",
    "UnsupportedInstruction",
    "make_progress",
    "parse",
    "select_stages",
]
