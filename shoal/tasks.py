"""Stopping asyncio tasks: one home for "cancel, then wait until they have ended".

A task that is cancelled has not stopped yet; its `finally` blocks run on its next
turn. `cancel_and_wait` cancels every task given, then waits for all of them, so the
caller can release what those tasks were using. Exceptions a task raised while
stopping are swallowed (the caller is shutting it down), except a cancellation of
the caller itself, which propagates.
"""

from __future__ import annotations

import asyncio
from typing import Iterable


async def cancel_and_wait(*tasks: asyncio.Task | asyncio.Future | None | Iterable) -> None:
    """Cancel the given tasks (None entries and iterables of tasks are accepted) and
    wait until each has finished."""
    flat: list[asyncio.Future] = []
    for item in tasks:
        if item is None:
            continue
        if isinstance(item, asyncio.Future):
            flat.append(item)
        else:
            flat.extend(t for t in item if t is not None)
    for task in flat:
        task.cancel()
    if flat:
        await asyncio.gather(*flat, return_exceptions=True)
