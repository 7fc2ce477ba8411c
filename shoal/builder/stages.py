"""Which stages a build runs (pure): the target and every stage it reads."""

from __future__ import annotations

from typing import Mapping

from shoal.builder.dockerfile import Dockerfile, Stage
from shoal.builder.errors import UnknownStage
from shoal.builder.expand import expand


def select_stages(df: Dockerfile, target: str | None, global_vars: Mapping[str, str]) -> list[Stage]:
    """Pure: the target stage and every stage it (transitively) reads, in file order."""
    if target:
        last = df.stage(target)
        if last is None:
            names = ", ".join(s.label for s in df.stages)
            raise UnknownStage(f"--target {target!r}: no such stage (stages: {names})")
    else:
        last = df.stages[-1]
    needed: set[int] = set()
    todo = [last]
    while todo:
        stage = todo.pop()
        if stage.index in needed:
            continue
        needed.add(stage.index)
        refs = [expand(stage.base, global_vars)]
        refs += [ins.flag("from") for ins in stage.instructions if ins.keyword == "COPY" and ins.flag("from")]
        for ref in refs:
            dep = df.stage(ref)
            if dep is not None and dep.index < stage.index:
                todo.append(dep)
            elif dep is not None and dep.index >= stage.index:
                raise UnknownStage(f"stage {ref!r} is not defined before stage {stage.label!r}", stage.line)
    return [s for s in df.stages if s.index in needed]
