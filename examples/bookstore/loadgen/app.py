"""loadgen: a client inside the mesh that sends traffic to frontend, stdlib only.

`app.py serve` (the container's command) only answers /healthz, so the pod idles in
the mesh with a sidecar and a SPIFFE identity of its own. `app.py warmup` sends serial
requests until N in a row succeed (the mesh has caught up). `app.py run` (started with
`shoal exec`) sends GET requests to frontend for --seconds from --concurrency threads
and prints one JSON summary: requests, status codes, which reviews version answered
with which rating, client-side p50/p99, and the mTLS identities every hop reported.
Its own outbound calls go through its sidecar, so they are mTLS like any other edge.
"""

import argparse
import collections
import json
import os
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        data = b'{"status": "ok"}'
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


def run(url, seconds, concurrency, headers=None):
    lock = threading.Lock()
    codes = collections.Counter()
    answers = collections.Counter()
    identities = set()
    latencies = []
    deadline = time.monotonic() + seconds

    def worker():
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                request = urllib.request.Request(url, headers=headers or {})
                with urllib.request.urlopen(request, timeout=5) as response:
                    code, body = response.status, json.load(response)
            except urllib.error.HTTPError as exc:
                code, body = exc.code, None
            except OSError as exc:
                code, body = type(exc).__name__, None
            elapsed = time.monotonic() - started
            with lock:
                codes[str(code)] += 1
                latencies.append(elapsed)
                if body:
                    answers[(body["reviews_version"], body["rating"])] += 1
                    for hop, seen in body["hops"].items():
                        identities.add((hop, seen["client"], seen["server"]))

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()

    def quantile(q):
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else None

    return {
        "url": url, "seconds": seconds, "concurrency": concurrency,
        "requests": len(latencies), "codes": dict(codes),
        "answers": [{"reviews_version": v, "rating": r, "count": n}
                    for (v, r), n in sorted(answers.items())],
        "p50_ms": quantile(0.5), "p99_ms": quantile(0.99),
        "hops": [{"service": hop, "caller": client, "server": server}
                 for hop, client, server in sorted(identities)],
    }


def warmup(url, successes, timeout):
    """Serial requests until `successes` in a row answer 200 (or `timeout` seconds)."""
    started = time.monotonic()
    in_a_row = requests = 0
    last_error = None
    while in_a_row < successes and time.monotonic() - started < timeout:
        requests += 1
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            in_a_row += 1
        except OSError as exc:  # HTTPError included: any failure starts the count again
            in_a_row, last_error = 0, str(exc)
            time.sleep(0.2)
    return {"ok": in_a_row >= successes, "requests": requests,
            "seconds": round(time.monotonic() - started, 2), "last_error": last_error}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve")
    r = sub.add_parser("run")
    r.add_argument("--url", default=os.environ.get("FRONTEND_URL", "http://frontend/"))
    r.add_argument("--seconds", type=float, default=5)
    r.add_argument("--concurrency", type=int, default=4)
    r.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                   help="a request header, e.g. end-user:jason (repeatable)")
    w = sub.add_parser("warmup")
    w.add_argument("--url", default=os.environ.get("FRONTEND_URL", "http://frontend/"))
    w.add_argument("--successes", type=int, default=20)
    w.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    if args.command == "serve":
        print(f"loadgen idle on :{PORT}; run it with: python3 /app/app.py run", flush=True)
        ThreadingHTTPServer(("0.0.0.0", PORT), Health).serve_forever()
    if args.command == "warmup":
        print(json.dumps(warmup(args.url, args.successes, args.timeout)))
        return
    headers = dict(h.split(":", 1) for h in args.header)
    print(json.dumps(run(args.url, args.seconds, args.concurrency, headers)))


if __name__ == "__main__":
    main()
