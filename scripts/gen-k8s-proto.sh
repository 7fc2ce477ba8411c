#!/usr/bin/env bash
# Regenerate shoal/apiserver/k8sproto/*_pb2.py: the Kubernetes API protobuf schema that
# shoal's API server uses to read `application/vnd.kubernetes.protobuf` request bodies.
#
# Source of the schema: the compiled descriptors of Kubernetes' generated.proto files
# that client-go embeds in every kubectl binary (gzipped FileDescriptorProtos registered
# by the generated.pb.go files). Taking them from the installed kubectl gives exactly the
# schema that kubectl speaks, with no hand copy of any .proto text. The descriptors are
# renamed to shoal/apiserver/k8sproto/<short>.proto (so the generated modules are
# importable Python), the gogoproto import and options are dropped (they only steer Go
# code generation, never the wire format), and protoc (grpcio-tools, in a throwaway venv,
# so the project venv's protobuf is untouched) compiles them to Python.
#
# Usage: scripts/gen-k8s-proto.sh            (uses `kubectl` on PATH)
#        KUBECTL=/path/to/kubectl scripts/gen-k8s-proto.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL=$(readlink -f "${KUBECTL:-$(command -v kubectl)}")
# 1.76 emits gencode for protobuf 6.31.1, the level xds-protos needs too (runs on 6.31+ and 7.x)
GRPCIO_TOOLS_VERSION=${GRPCIO_TOOLS_VERSION:-1.76.0}
OUT=shoal/apiserver/k8sproto
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

VENV=${GEN_VENV:-$WORK/venv}  # GEN_VENV: reuse a venv that already has grpcio-tools
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import grpc_tools" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "grpcio-tools==$GRPCIO_TOOLS_VERSION"
fi

KUBECTL_VERSION=$("$KUBECTL" version --client -o json | python3 -c \
  'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')

"$VENV/bin/python" - "$KUBECTL" "$WORK/k8s.binpb" "$OUT/go_fields.py" <<'EOF'
import re
import sys
import zlib

from google.protobuf import descriptor_pb2
from google.protobuf.unknown_fields import UnknownFieldSet

# Kubernetes file name -> our file name (module shoal.apiserver.k8sproto.<short>_pb2).
FILES = {
    "k8s.io/apimachinery/pkg/runtime/schema/generated.proto": "runtime_schema",
    "k8s.io/apimachinery/pkg/runtime/generated.proto": "runtime",
    "k8s.io/apimachinery/pkg/util/intstr/generated.proto": "intstr",
    "k8s.io/apimachinery/pkg/api/resource/generated.proto": "resource",
    "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto": "meta_v1",
    "k8s.io/api/core/v1/generated.proto": "core_v1",
    "k8s.io/api/apps/v1/generated.proto": "apps_v1",
    "k8s.io/api/autoscaling/v1/generated.proto": "autoscaling_v1",
    "k8s.io/api/batch/v1/generated.proto": "batch_v1",
}
GOGO = "github.com/gogo/protobuf/gogoproto/gogo.proto"
GOGO_NULLABLE = 65001    # (gogoproto.nullable) = false marks a Go value, not a pointer
GOGO_CUSTOMNAME = 65004  # the Go field name


def go_fields(prefix: str, messages, named_tags: set[str]) -> tuple[list[str], list[str]]:
    """Full names of (the singular fields that are Go pointers, nil when unset; the
    embedded structs whose JSON is inlined into the parent object).

    An embedded struct is a Go value field named as its type (ObjectMeta, ProbeHandler,
    LocalObjectReference). It is inlined unless it is `metadata` or the binary holds a
    struct tag naming its JSON key for that field number and name
    (`json:"podAffinityTerm" protobuf:"bytes,2,opt,name=podAffinityTerm"`).
    """
    pointers, inline = [], []
    for msg in messages:
        name = f"{prefix}.{msg.name}"
        sub_p, sub_i = go_fields(name, msg.nested_type, named_tags)
        pointers += sub_p
        inline += sub_i
        if msg.options.map_entry:
            continue
        for f in msg.field:
            if f.label == f.LABEL_REPEATED:
                continue
            opts = {u.field_number: u.data for u in UnknownFieldSet(f.options)}
            if opts.get(GOGO_NULLABLE) != 0:
                pointers.append(f"{name}.{f.name}")
            elif (f.type == f.TYPE_MESSAGE and f.name != "metadata"
                  and opts.get(GOGO_CUSTOMNAME, b"").decode() == f.type_name.rsplit(".", 1)[-1]
                  and (f.number, f.name) not in named_tags):
                inline.append(f"{name}.{f.name}")
    return pointers, inline


def rename(name: str) -> str:
    return f"shoal/apiserver/k8sproto/{FILES[name]}.proto"


def strip_gogo(msg) -> None:
    """Drop gogoproto extension options (unknown here) from every options message."""
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        for sub in (value if field.is_repeated else [value]):
            strip_gogo(sub)
    if hasattr(msg, "options") and msg.HasField("options"):
        opts = msg.options
        opts.DiscardUnknownFields()
        if not opts.ListFields():
            msg.ClearField("options")


binary = open(sys.argv[1], "rb").read()
# Struct tags of message fields: (number, name) -> named JSON key, or inlined.
named_tags, inline_tags = set(), set()
for m in re.finditer(rb'json:"([^"]*)" protobuf:"bytes,(\d+),opt,name=(\w+)"', binary):
    key = (int(m.group(2)), m.group(3).decode())
    (inline_tags if m.group(1).startswith(b",") else named_tags).add(key)
named_tags -= inline_tags
found = {}
for m in re.finditer(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00", binary):
    try:
        raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(binary[m.start():m.start() + 4_000_000])
        fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
    except Exception:
        continue
    if fdp.name in FILES and fdp.name not in found:
        found[fdp.name] = fdp
missing = sorted(set(FILES) - set(found))
if missing:
    sys.exit(f"not found in {sys.argv[1]}: {', '.join(missing)}")

fds = descriptor_pb2.FileDescriptorSet()
pointers, inline = [], []
for name in FILES:  # dependency order
    fdp = found[name]
    sub_p, sub_i = go_fields(fdp.package, fdp.message_type, named_tags)
    pointers += sub_p
    inline += sub_i
    deps = [d for d in fdp.dependency if d != GOGO]
    unknown = [d for d in deps if d not in FILES]
    if unknown:
        sys.exit(f"{name} imports files outside the set: {unknown}")
    del fdp.dependency[:]
    fdp.dependency.extend(rename(d) for d in deps)
    del fdp.public_dependency[:], fdp.weak_dependency[:]
    fdp.name = rename(name)
    strip_gogo(fdp)
    fds.file.append(fdp)
open(sys.argv[2], "wb").write(fds.SerializeToString())
with open(sys.argv[3], "w") as out:
    out.write('''"""Generated by scripts/gen-k8s-proto.sh from kubectl's embedded schema. DO NOT EDIT.

What the Go types say about their fields that the wire schema does not:

POINTER_FIELDS: the singular fields that are Go pointers. On the wire they are present
only when set, and a present zero value (replicas: 0, runAsUser: 0,
automountServiceAccountToken: false) is meaningful. Every other singular field is a Go
value, written even when zero, and left out of JSON when zero (`omitempty`).

INLINE_FIELDS: embedded structs whose fields JSON puts in the parent object
(`json:",inline"`: Volume.volumeSource, Probe.handler, ConfigMapKeySelector's
LocalObjectReference, ...).
"""

''')
    for var, names in (("POINTER_FIELDS", pointers), ("INLINE_FIELDS", inline)):
        out.write(f"{var}: frozenset[str] = frozenset({{\n")
        for p in sorted(names):
            out.write(f"    {p!r},\n")
        out.write("})\n\n")
EOF

rm -f "$OUT"/*_pb2.py
"$VENV/bin/python" -m grpc_tools.protoc --descriptor_set_in="$WORK/k8s.binpb" \
  --python_out=. \
  "$OUT/runtime_schema.proto" "$OUT/runtime.proto" "$OUT/intstr.proto" "$OUT/resource.proto" \
  "$OUT/meta_v1.proto" "$OUT/core_v1.proto" "$OUT/apps_v1.proto" "$OUT/autoscaling_v1.proto" \
  "$OUT/batch_v1.proto"

# The schema is Kubernetes' work: keep its copyright and license on every module.
for f in "$OUT"/*_pb2.py; do
  { printf '%s\n' "# Kubernetes API schema (k8s.io/api, k8s.io/apimachinery generated.proto) as" \
      "# compiled into kubectl $KUBECTL_VERSION. Copyright The Kubernetes Authors." \
      "# Licensed under the Apache License, Version 2.0:" \
      "# http://www.apache.org/licenses/LICENSE-2.0" ; cat "$f"; } > "$f.tmp" && mv "$f.tmp" "$f"
done
echo "$KUBECTL_VERSION" > "$OUT/KUBERNETES_VERSION"
echo "generated $(ls "$OUT"/*_pb2.py | wc -l) modules from the schema in kubectl $KUBECTL_VERSION"
