"""shoal.mesh.telemetry: Istio's standard metrics for sidecars that lack Istio's filter.

    records    OTLP access-log records from sidecars -> Record values (pure)
    workloads  pods, workloads and services by address, from one ClusterState (pure)
    labels     Istio's standard labels of a record (pure)
    metrics    per-proxy counters and histograms, Prometheus text (pure)
    service    the metrics service: OTLP LogsService + page server on Unix sockets;
               PodSockets binds them next to each pod's xDS socket

The Envoy side (access loggers, the 15090 merge) is `shoal.mesh.translate.telemetry`.
Wiring (daemon): `service = TelemetryService(source, mesh)`, `await service.start()`,
`MeshHooks(xds_server=PodSockets(xds_server, service), ...)`, `await service.stop()`.
"""

from shoal.mesh.telemetry.service import PodSockets, TelemetryService

__all__ = ["PodSockets", "TelemetryService"]
