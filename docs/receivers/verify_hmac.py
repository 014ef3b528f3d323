import base64
import hashlib
import hmac
import time


def key_bytes(secret: str) -> bytes:
    # The HMAC key is the base64-decoded part after "whsec_", not the text of the secret.
    return base64.b64decode(secret.removeprefix("whsec_"))


def verify_standard_webhooks(secret: str, headers: dict, body: bytes, tolerance: int = 300) -> bool:
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False  # too old or from the future: a replay
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key_bytes(secret), signed, hashlib.sha256).digest()).decode()
    # One "v1,<base64>" entry per active secret, space-separated (two during a rotation).
    return any(
        hmac.compare_digest(entry.removeprefix("v1,"), expected)
        for entry in headers["webhook-signature"].split(" ")
        if entry.startswith("v1,")
    )


def verify_hookline_signature(secret: str, header: str, body: bytes) -> bool:
    # X-Hookline-Signature: "sha256=<hex HMAC-SHA256 of the raw body>", comma-separated during a
    # rotation. It signs the body alone: pair it with a check of the envelope's timestamp.
    expected = hmac.new(key_bytes(secret), body, hashlib.sha256).hexdigest()
    return any(
        hmac.compare_digest(entry.strip().removeprefix("sha256="), expected)
        for entry in header.split(",")
    )
