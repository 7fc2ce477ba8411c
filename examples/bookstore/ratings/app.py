"""ratings: the star rating of a book (GET /ratings/BOOK_ID), stdlib only.

Every answer names who called (the caller's SPIFFE ID, which this pod's sidecar
writes into x-forwarded-client-cert after the mTLS handshake) and who answered.
"""

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))
STARS = {"1": 5, "2": 4, "3": 3, "4": 5}


def peer_identities(xfcc: str) -> dict:
    """x-forwarded-client-cert `By=<server>;Hash=..;URI=<client>` -> {server, client}."""
    fields = dict(part.split("=", 1) for part in xfcc.split(";") if "=" in part)
    return {"server": fields.get("By", ""), "client": fields.get("URI", "")}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"status": "ok"})
        book = self.path.rstrip("/").rsplit("/", 1)[-1]
        if not self.path.startswith("/ratings/") or book not in STARS:
            return self.reply(404, {"error": f"no rating for {self.path}"})
        self.reply(200, {"book_id": book, "stars": STARS[book], "pod": socket.gethostname(),
                         "mtls": peer_identities(self.headers.get("x-forwarded-client-cert", ""))})

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # one line per error only: keep logs small
        if not args or not str(args[1]).startswith("2"):
            super().log_message(fmt, *args)


if __name__ == "__main__":
    print(f"ratings listening on :{PORT}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
