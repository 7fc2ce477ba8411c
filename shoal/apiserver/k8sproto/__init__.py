"""The Kubernetes API protobuf schema, as generated Python modules (see README.md).

Regenerate with `scripts/gen-k8s-proto.sh`; never edit the `*_pb2.py` or
`go_pointers.py` modules by hand. Only `shoal.apiserver.protobuf` should import these.
"""
