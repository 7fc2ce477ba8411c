"""shoal.api: the Kubernetes resource model - kinds, schema, defaults, validation, errors.

Objects are plain dicts in Kubernetes JSON shape, never model instances. Import the
modules you need, as modules:

    from shoal.api import kinds, defaults, validation, errors

    rt = kinds.by_resource("deploy")             # ResourceType(apps/v1 Deployment)
    obj = defaults.apply_defaults(body)          # new dict, Kubernetes' defaults filled in
    validation.validate(obj, old=stored_or_None) # raises errors.Invalid with field paths

Modules: `kinds` (registry: ResourceType, lookups, `register` for later kinds), `strategy`
(the per-kind hooks the API server's generic registry calls), `schema` (structural checks
from the kubernetes client's models), `defaults`, `validation`, `names` (DNS-1123 and
other name formats), `quantity` (resource quantities), `errors` (Status error family and
its one reason/code table), `client` (the ApiClient protocol and what both clients
share), `patch` and `patchmeta` (patch bodies), `selectors` and `fieldselectors`,
`printers` with `printcells` and `podprint` (server-side tables). Per-kind rules and
strategies live in `shoal.api.builtin`. This package imports nothing heavy: `kubernetes.client` is loaded on
the first validation (or by `validation.warm_up()`).
"""
