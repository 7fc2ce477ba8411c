#!/usr/bin/env bash
# Install the given Debian packages if any is missing; idempotent, quiet when all are there.
# kubectl: the Debian package kubernetes-client is installed only when no kubectl is on PATH
# (some machines ship a newer kubectl of their own, which the tests accept as well).
set -euo pipefail
want=("$@")
command -v kubectl >/dev/null 2>&1 || want+=(kubernetes-client)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "apt: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
