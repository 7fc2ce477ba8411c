"""Admission: a chain of small functions run on every create and update.

Mutating steps run after defaulting and before validation (they may change the object);
validating steps run after validation and may only reject. Each step is
`async (request: AdmissionRequest) -> dict | None`: a mutator returns the new object
(or None for no change), a validator returns None or raises a StatusError
(`Invalid` with field paths, or `Forbidden`).

The mesh's sidecar injection is a mutating step registered by the daemon; policies come
later the same way. Steps see the stored namespace object, so label-driven behaviour
(`istio-injection=enabled`) needs no extra lookup.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Callable

from shoal.api.kinds import ResourceType

Obj = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class AdmissionRequest:
    operation: str  # CREATE | UPDATE
    type: ResourceType
    object: Obj
    old: Obj | None
    namespace: Obj | None  # the stored Namespace of a namespaced object
    dry_run: bool = False


Step = Callable[[AdmissionRequest], Awaitable[Obj | None]]


@dataclasses.dataclass
class AdmissionChain:
    mutating: list[Step] = dataclasses.field(default_factory=list)
    validating: list[Step] = dataclasses.field(default_factory=list)

    async def mutate(self, request: AdmissionRequest) -> Obj:
        obj = request.object
        for step in self.mutating:
            changed = await step(dataclasses.replace(request, object=obj))
            if changed is not None:
                obj = changed
        return obj

    async def validate(self, request: AdmissionRequest) -> None:
        for step in self.validating:
            await step(request)
