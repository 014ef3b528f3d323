from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def verify(secret: str, headers: dict, body: bytes) -> dict | None:
    """Returns the event if the request is genuine and recent, else None.

    `secret` is the endpoint's `whsec_...` secret as the API returned it; `headers` needs
    webhook-id, webhook-timestamp and webhook-signature; `body` is the raw request body, before
    any JSON parsing.
    """
    try:
        return Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return None
