"""catalog: the list of books (GET /books), read from a ConfigMap file, stdlib only.

The books come from /etc/catalog/books.json (the `catalog-books` ConfigMap mounted as
a volume), re-read on every request so an edited ConfigMap shows without a restart.
"""

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))
BOOKS_FILE = os.environ.get("BOOKS_FILE", "/etc/catalog/books.json")


def peer_identities(xfcc: str) -> dict:
    """x-forwarded-client-cert `By=<server>;Hash=..;URI=<client>` -> {server, client}."""
    fields = dict(part.split("=", 1) for part in xfcc.split(";") if "=" in part)
    return {"server": fields.get("By", ""), "client": fields.get("URI", "")}


def load_books():
    with open(BOOKS_FILE) as f:
        return json.load(f)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            load_books()  # not ready without its ConfigMap
            return self.reply(200, {"status": "ok"})
        if self.path != "/books":
            return self.reply(404, {"error": f"no such path {self.path}"})
        self.reply(200, {"books": load_books(), "pod": socket.gethostname(),
                         "mtls": peer_identities(self.headers.get("x-forwarded-client-cert", ""))})

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        if not args or not str(args[1]).startswith("2"):
            super().log_message(fmt, *args)


if __name__ == "__main__":
    print(f"catalog listening on :{PORT}, books from {BOOKS_FILE}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
