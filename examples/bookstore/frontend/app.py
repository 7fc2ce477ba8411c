"""frontend: a book page (GET / or /book/BOOK_ID) from catalog, reviews and ratings.

Asks `catalog` for the books, picks one (round robin, or the one in the path), asks
`reviews` (v1 or v2, whichever the mesh picks) for its reviews and rating, and answers
with one JSON document naming the reviews version that answered, the rating, and the
mTLS identities every hop saw (from x-forwarded-client-cert, set by the sidecars).
"""

import itertools
import json
import os
import socket
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))
CATALOG_URL = os.environ.get("CATALOG_URL", "http://catalog")
REVIEWS_URL = os.environ.get("REVIEWS_URL", "http://reviews")
NEXT_BOOK = itertools.count()


def peer_identities(xfcc: str) -> dict:
    """x-forwarded-client-cert `By=<server>;Hash=..;URI=<client>` -> {server, client}."""
    fields = dict(part.split("=", 1) for part in xfcc.split(";") if "=" in part)
    return {"server": fields.get("By", ""), "client": fields.get("URI", "")}


FORWARDED = ("end-user",)
"""Request headers passed on to catalog and reviews (routing by `end-user`, as
Istio's bookinfo productpage does)."""


def get_json(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"status": "ok"})
        if self.path != "/" and not self.path.startswith("/book/"):
            return self.reply(404, {"error": f"no such page {self.path}"})
        forward = {h: self.headers[h] for h in FORWARDED if self.headers.get(h)}
        try:
            catalog = get_json(f"{CATALOG_URL}/books", forward)
            books = catalog["books"]
            wanted = self.path.rsplit("/", 1)[-1]
            book = next((b for b in books if b["id"] == wanted), None) \
                or books[next(NEXT_BOOK) % len(books)]
            reviews = get_json(f"{REVIEWS_URL}/reviews/{book['id']}", forward)
        except OSError as exc:
            return self.reply(502, {"error": str(exc)})
        self.reply(200, {
            "book": book["title"], "author": book["author"],
            "reviews_version": reviews["version"], "rating": reviews["rating"],
            "stars": reviews["stars"], "review": reviews["review"],
            "pod": socket.gethostname(),
            "hops": {
                "frontend": peer_identities(self.headers.get("x-forwarded-client-cert", "")),
                "catalog": catalog["mtls"],
                "reviews": reviews["mtls"],
                "ratings": reviews["ratings"]["mtls"],
            },
            "pods": {"catalog": catalog["pod"], "reviews": reviews["pod"],
                     "ratings": reviews["ratings"]["pod"]},
        })

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
    print(f"frontend listening on :{PORT}; catalog {CATALOG_URL}, reviews {REVIEWS_URL}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
