"""Test backend and load client for the DestinationRule end-to-end tests.

    policy_server.py serve PORT NAME [FAIL]
        GET /slow?ms=N  answers after N ms (default 500): holds a connection busy
        GET /flaky      500 when FAIL is "fail", else 200
        GET anything    200
        every 200 is JSON {"server": NAME}
    policy_server.py load URL COUNT CONCURRENCY [HEADER:VALUE ...]
        COUNT GETs over CONCURRENCY threads, a new connection each; prints JSON
        {"codes": {code: n}, "servers": {name: n}, "overloaded": n, "errors": [...]}
        ("overloaded": answers with Envoy's x-envoy-overloaded header, its local
        circuit-breaker reply)
"""

import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port: int, name: str, fail: bool) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            url = urllib.parse.urlparse(self.path)
            status = 200
            if url.path == "/slow":
                ms = int(urllib.parse.parse_qs(url.query).get("ms", ["500"])[0])
                time.sleep(ms / 1000)
            elif url.path == "/flaky" and fail:
                status = 500
            body = json.dumps({"server": name, "status": status}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


def load(url: str, count: int, concurrency: int, headers: dict[str, str]) -> dict:
    lock = threading.Lock()
    result: dict = {"codes": {}, "servers": {}, "overloaded": 0, "errors": []}
    todo = list(range(count))

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            request = urllib.request.Request(url, headers=headers)
            server = None
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    code, got = response.status, response.headers
                    server = json.loads(response.read())["server"]
            except urllib.error.HTTPError as exc:
                code, got = exc.code, exc.headers
                exc.read()
            except Exception as exc:  # every failure counts
                with lock:
                    result["errors"].append(repr(exc)[:200])
                continue
            with lock:
                result["codes"][str(code)] = result["codes"].get(str(code), 0) + 1
                if server:
                    result["servers"][server] = result["servers"].get(server, 0) + 1
                if got.get("x-envoy-overloaded"):
                    result["overloaded"] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "fail")
    else:
        extra = dict(h.split(":", 1) for h in sys.argv[5:])
        print(json.dumps(load(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), extra)))
