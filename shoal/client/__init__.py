"""shoal.client: talking to shoal's API as any Kubernetes client does.

`HttpClient` implements the `shoal.api.client.ApiClient` protocol over HTTPS with the
kubeconfig's CA and token. The CLI, the dashboard and any component run as its own
process use it; the daemon's in-process `shoal.apiserver.local.LocalClient` implements
the same protocol without the network. The faces import this package, never
`shoal.apiserver`.
"""

from shoal.client.http import HttpClient, KubeconfigError, load_kubeconfig

__all__ = ["HttpClient", "KubeconfigError", "load_kubeconfig"]
