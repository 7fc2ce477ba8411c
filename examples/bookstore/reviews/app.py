"""reviews: reviews of a book (GET /reviews/BOOK_ID) with its rating, stdlib only.

The same image runs as v1 and v2 (env VERSION): v1 shows the rating as a number, v2
as stars. Both ask `ratings` for the rating, and pass on who ratings saw calling.
"""

import json
import os
import socket
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))
VERSION = os.environ.get("VERSION", "v1")
RATINGS_URL = os.environ.get("RATINGS_URL", "http://ratings")
REVIEWS = {
    "1": "A classic; every page earns its place.",
    "2": "Dense but rewarding.",
    "3": "Good ideas, uneven execution.",
    "4": "Read it twice.",
}


def peer_identities(xfcc: str) -> dict:
    """x-forwarded-client-cert `By=<server>;Hash=..;URI=<client>` -> {server, client}."""
    fields = dict(part.split("=", 1) for part in xfcc.split(";") if "=" in part)
    return {"server": fields.get("By", ""), "client": fields.get("URI", "")}


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            return self.reply(200, {"status": "ok", "version": VERSION})
        book = self.path.rstrip("/").rsplit("/", 1)[-1]
        if not self.path.startswith("/reviews/") or book not in REVIEWS:
            return self.reply(404, {"error": f"no reviews for {self.path}"})
        try:
            rating = get_json(f"{RATINGS_URL}/ratings/{book}")
        except OSError as exc:
            return self.reply(502, {"error": f"ratings: {exc}", "version": VERSION})
        stars = rating["stars"]
        shown = str(stars) if VERSION == "v1" else "*" * stars + "." * (5 - stars)
        self.reply(200, {
            "book_id": book, "version": VERSION, "pod": socket.gethostname(),
            "review": REVIEWS[book], "stars": stars, "rating": shown,
            "mtls": peer_identities(self.headers.get("x-forwarded-client-cert", "")),
            "ratings": {"pod": rating["pod"], "mtls": rating["mtls"]},
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
    print(f"reviews {VERSION} listening on :{PORT}, ratings at {RATINGS_URL}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
