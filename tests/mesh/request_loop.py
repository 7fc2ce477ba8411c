"""Test client: GET URLs (comma-separated, in turn) in a loop for SECONDS, a new
connection each time; prints JSON {"ok": n, "failed": n, "errors": [...],
"servers": {name: count}}. argv: URLS SECONDS."""

import json
import sys
import time
import urllib.request

urls, seconds = sys.argv[1].split(","), float(sys.argv[2])
ok = failed = 0
errors: list[str] = []
servers: dict[str, int] = {}
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    url = urls[(ok + failed) % len(urls)]
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            name = json.loads(response.read())["server"]
            servers[name] = servers.get(name, 0) + 1
            ok += 1
    except Exception as exc:  # every failure counts
        failed += 1
        errors.append(f"{time.strftime('%H:%M:%S')} {url}: {exc!r}"[:300])
    time.sleep(0.02)
print(json.dumps({"ok": ok, "failed": failed, "errors": errors[:10], "servers": servers}))
