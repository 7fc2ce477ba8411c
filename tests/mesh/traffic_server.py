"""Test backend and load client for the traffic-routing tests (stdlib only).

    traffic_server.py serve PORT NAME [--fail-ratio R] [--fail-status S] [--delay SECONDS]
        Answers every request with JSON {"server": NAME, "path", "host", "headers"};
        fails a random share R of requests with status S (default 503) and waits
        SECONDS before answering. GET /__stats answers {"requests": n, "hosts": {...}}
        about the requests served so far (not counting itself).

    traffic_server.py load URL COUNT [HEADER ...]
        COUNT sequential GETs (one keep-alive connection, reopened after errors; a new
        connection per request with "Connection: close"), each header "Name: value" sent; prints JSON {"status": {code: n}, "servers": {name: n},
        "errors": n, "seconds": [per-request seconds]}.
"""

import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port: int, name: str, fail_ratio: float, fail_status: int, delay: float) -> None:
    lock = threading.Lock()
    stats = {"requests": 0, "hosts": {}}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body in one segment: no Nagle / delayed-ACK pause per request
        wbufsize = 65536
        disable_nagle_algorithm = True

        def _answer(self) -> None:
            if self.path == "/__stats":
                with lock:
                    self._send(200, dict(stats))
                return
            with lock:
                stats["requests"] += 1
                host = self.headers.get("host", "")
                stats["hosts"][host] = stats["hosts"].get(host, 0) + 1
            if delay:
                time.sleep(delay)
            status = fail_status if random.random() < fail_ratio else 200
            self._send(status, {"server": name, "path": self.path, "host": self.headers.get("host"),
                                "headers": {k.lower(): v for k, v in self.headers.items()}})

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer  # noqa: N815

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


def load(url: str, count: int, headers: list[str]) -> None:
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    extra = dict(h.split(":", 1) for h in headers)
    extra = {k.strip(): v.strip() for k, v in extra.items()}
    reopen = extra.get("Connection", "").lower() == "close"
    result = {"status": {}, "servers": {}, "errors": 0, "seconds": []}
    conn = None
    for _ in range(count):
        start = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
            conn.request("GET", path, headers=extra)
            response = conn.getresponse()
            body = response.read()
            code = str(response.status)
            result["status"][code] = result["status"].get(code, 0) + 1
            try:
                server = json.loads(body)["server"]
                result["servers"][server] = result["servers"].get(server, 0) + 1
            except (ValueError, KeyError, TypeError):
                pass  # an answer from Envoy itself (504, fault abort, ...)
            if reopen or response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException):
            result["errors"] += 1
            if conn is not None:
                conn.close()
            conn = None
        result["seconds"].append(round(time.monotonic() - start, 4))
    print(json.dumps(result))


def main(argv: list[str]) -> None:
    if argv[0] == "serve":
        options = dict(zip(argv[3::2], argv[4::2]))
        serve(int(argv[1]), argv[2], float(options.get("--fail-ratio", 0)),
              int(options.get("--fail-status", 503)), float(options.get("--delay", 0)))
    elif argv[0] == "load":
        load(argv[1], int(argv[2]), argv[3:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
