"""What `pods/portforward` needs from the node (`PodPorts`), and the words it uses when
a port cannot be reached; shared by the channel form (`portforward`) and the SPDY form
(`spdyforward`)."""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

from shoal.api import errors


class PodPorts(Protocol):
    """What `pods/portforward` needs from the node."""

    async def open_port(self, namespace: str, pod: str, port: int) -> tuple[asyncio.StreamReader,
                                                                            asyncio.StreamWriter]:
        """A TCP connection to `port` of the pod (its own localhost, as kubelet
        connects). Raises StatusError when the pod cannot be served; OSError when the
        port refuses."""
        ...

    async def check_ports(self, namespace: str, pod: str) -> str:
        """The pod's uid; raises StatusError (Kubernetes' words) when the pod cannot be
        port-forwarded."""
        ...


def forward_error(pod: str, uid: str, port: int, exc: BaseException) -> str:
    """The error-stream text for a port that could not be reached (kubelet's wording:
    `error forwarding port P to pod NAME, uid UID: REASON`)."""
    if isinstance(exc, errors.StatusError):
        reason = exc.message
    elif isinstance(exc, OSError) and exc.errno:
        reason = f"failed to connect to localhost:{port} inside the pod's network namespace: " \
                 f"{os.strerror(exc.errno).lower()}"
    elif isinstance(exc, asyncio.TimeoutError):
        reason = f"failed to connect to localhost:{port} inside the pod's network namespace: timed out"
    else:
        reason = str(exc)
    return f"error forwarding port {port} to pod {pod}, uid {uid}: {reason}"
