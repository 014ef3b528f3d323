"""A receiver that verifies, deduplicates by event id, answers at once and processes later."""
import json
import queue
import sqlite3
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = sys.argv[1]  # the endpoint's whsec_... secret
PORT = int(sys.argv[2])
OUTBOX = sys.argv[3]  # where the worker writes what it processed (your business logic)

work = queue.Queue()
seen = sqlite3.connect(":memory:", check_same_thread=False)
seen.execute("CREATE TABLE seen (id TEXT PRIMARY KEY)")
seen_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            event = Webhook(SECRET).verify(body, headers)
        except WebhookVerificationError:
            self.send_response(401)
            self.end_headers()
            return
        # At-least-once delivery: a retry carries the same id. Keep the ids you have taken.
        with seen_lock:
            is_new = seen.execute("INSERT OR IGNORE INTO seen VALUES (?)", (event["id"],)).rowcount == 1
        if is_new:
            work.put(event)  # hand the work off ...
        self.send_response(204)  # ... and answer within a second or two, well inside the timeout
        self.end_headers()

    def log_message(self, *args):
        pass


def worker():
    while True:
        event = work.get()
        # attempt.number is 1 on the first try and grows with each retry: useful in logs.
        line = {"id": event["id"], "event": event["event"], "attempt": event["attempt"]["number"]}
        with open(OUTBOX, "a") as out:
            out.write(json.dumps(line) + "\n")


threading.Thread(target=worker, daemon=True).start()
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
