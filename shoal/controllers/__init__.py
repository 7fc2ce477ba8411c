"""shoal.controllers: the reconcilers that turn desired state into Pods and keep API
objects consistent, purely through the API (`shoal.api.client.ApiClient`).

The daemon starts them all with::

    manager = await controllers.run_controllers(client, settings)
    ...
    await manager.stop()          # on shutdown (cancels informers and workers)

`run_controllers` creates the `default` and `kube-system` namespaces if missing, builds
one `engine.Manager` (shared informers/caches), adds every controller — deployment,
replicaset, garbage collector (one per collected resource), namespace (default
ServiceAccount, `kube-root-ca.crt` from `<state>/pki/ca.crt`), endpoints, scheduler,
event expiry — starts the informers, waits for their caches to sync, then starts the
controllers, and returns the running manager. `ControllerOptions` shortens the timings
for tests.

Modules (each opens with its design and concurrency rules):

- `engine`      Request/Result, WorkQueue, RateLimiter, Informer/Lister, Controller, Manager
- `deployment`  DeploymentController; `rollback()`, `history()` and `rollout_state()`
                for `shoal rollout undo|history|status`
- `replicaset`  ReplicaSetController
- `jobs`, `cronjobs`  JobController, CronJobController; their pure decisions in
                `jobstate` and `cronplan`
- `gc`          GarbageCollector (ownerReferences; Background, Foreground, Orphan)
- `namespace`   NamespaceController (lifecycle, default ServiceAccount, root CA)
- `endpoints`   EndpointsController and the pure `build_subsets`
- `endpointslices`  EndpointSliceController and the pure `build_slices`
- `scheduler`   Scheduler (binds pods to Settings.node_name when they fit its Node;
                `scheduling` holds the pure filters)
- `statefulsets`, `daemonsets`  StatefulSet (`statefulsetplan`: pure plan) and DaemonSet
                controllers; `revisions`: their ControllerRevisions
- `events`      EventRecorder (used by the node agent too)
- `eventttl`    EventTTL (deletes Events older than an hour)
- `rollout`, `pods`  pure math: maxSurge/maxUnavailable, status, pod ranking
"""

from __future__ import annotations

import dataclasses

from shoal.api.client import ApiClient
from shoal.config import Settings
from shoal.controllers import engine, jobstate
from shoal.controllers.cronjobs import CronJobController
from shoal.controllers.deployment import (DeploymentController, RollbackResult, RolloutState,
                                         history, rollback, rollout_state)
from shoal.controllers.endpoints import EndpointsController
from shoal.controllers.endpointslices import EndpointSliceController
from shoal.controllers.errors import ControllerError, RevisionNotFound
from shoal.controllers.events import EventRecorder
from shoal.controllers.eventttl import EventTTL
from shoal.controllers.gc import COLLECTED, GarbageCollector
from shoal.controllers.jobs import JobController
from shoal.controllers.namespace import NamespaceController, ensure_namespaces
from shoal.controllers.replicaset import ReplicaSetController
from shoal.controllers.scheduler import Scheduler
from shoal.controllers.statefulsets import StatefulSetController
from shoal.controllers.daemonsets import DaemonSetController


@dataclasses.dataclass(frozen=True)
class ControllerOptions:
    """Timing knobs; the defaults are Kubernetes'. Tests shorten them."""

    retry_base: float = 0.005
    """Seconds before the first retry of a failed reconcile (doubles each failure)."""
    retry_cap: float = 1000.0
    """Longest retry delay in seconds."""
    namespace_poll: float = 1.0
    """Seconds between checks while a terminating namespace empties."""
    informer_retry: float = 1.0
    """Seconds an informer waits before relisting after an unexpected error."""
    event_ttl: float = 3600.0
    """Seconds an Event is kept after it was last seen (Kubernetes: one hour)."""
    event_sweep_interval: float = 300.0
    """Seconds between sweeps for expired Events."""
    job_backoff: jobstate.Backoff = jobstate.Backoff()
    """Delay before a Job replaces a failed pod (Kubernetes: 10 s doubling to 10 min)."""


def build_manager(client: ApiClient, settings: Settings,
                  options: ControllerOptions = ControllerOptions()) -> engine.Manager:
    """A manager with every controller added, not started."""
    manager = engine.Manager(client, informer_retry_delay=options.informer_retry)
    node = settings.node_name
    controllers = [
        DeploymentController(manager, EventRecorder(client, "deployment-controller")).controller(),
        ReplicaSetController(manager, EventRecorder(client, "replicaset-controller")).controller(),
        NamespaceController(manager, EventRecorder(client, "namespace-controller"),
                            poll=options.namespace_poll,
                            ca_cert=settings.pki_dir / "ca.crt").controller(),
        EndpointsController(manager, EventRecorder(client, "endpoint-controller")).controller(),
        EndpointSliceController(manager, EventRecorder(client, "endpoint-slice-controller")).controller(),
        Scheduler(manager, EventRecorder(client, "default-scheduler"), node).controller(),
        StatefulSetController(manager, EventRecorder(client, "statefulset-controller")).controller(),
        DaemonSetController(manager, EventRecorder(client, "daemonset-controller")).controller(),
        EventTTL(manager, ttl=options.event_ttl,
                 interval=options.event_sweep_interval).controller(),
        JobController(manager, EventRecorder(client, "job-controller"),
                      backoff=options.job_backoff).controller(),
        CronJobController(manager, EventRecorder(client, "cronjob-controller")).controller(),
        *GarbageCollector(manager, (*COLLECTED, "jobs.batch", "cronjobs.batch")).controllers(),
    ]
    for controller in controllers:
        controller.queue.rate_limiter = engine.RateLimiter(options.retry_base, options.retry_cap)
        manager.add(controller)
    return manager


async def run_controllers(client: ApiClient, settings: Settings,
                          options: ControllerOptions = ControllerOptions()) -> engine.Manager:
    """Start every controller; returns the running Manager (call `await m.stop()`)."""
    await ensure_namespaces(client)
    manager = build_manager(client, settings, options)
    await manager.start()
    return manager


__all__ = [
    "ControllerError", "ControllerOptions", "EventRecorder", "RevisionNotFound",
    "RollbackResult", "RolloutState", "build_manager", "engine", "history", "rollback",
    "rollout_state", "run_controllers",
]
