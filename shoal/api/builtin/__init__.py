"""Defaulting and semantic validation of the built-in kinds, one module per kind family.

Each module exposes `default_<kind>(obj)` (fills defaults in place, on a private copy made
by `shoal.api.defaults.apply_defaults`) and `validate_<kind>(obj, old)` (returns every
problem as `FieldError`s, `old` being the stored object on update). `shoal.api.kinds`
registers them, with the kind's `shoal.api.strategy.Strategy` subclass where the kind
differs from the generic registry (`NamespaceStrategy`, `podstrategy.PodStrategy`,
`ServiceStrategy`, `PvcStrategy`, `nodes.NodeStrategy`). Defaulters and validators are pure, never raise on
malformed input (structural problems are reported by `shoal.api.schema`; these functions
skip values of the wrong type), and never touch `status` defaults; status set at create
is the strategy's.
"""
