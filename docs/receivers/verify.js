const crypto = require("node:crypto");

// The HMAC key is the base64-decoded part after "whsec_", not the text of the secret.
function keyBytes(secret) {
  return Buffer.from(secret.replace(/^whsec_/, ""), "base64");
}

function safeEqual(a, b) {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

// headers: lower-case names as Node's http module gives them; body: the raw Buffer.
function verifyStandardWebhooks(secret, headers, body, toleranceSeconds = 300) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > toleranceSeconds) return false;
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]);
  const expected = crypto.createHmac("sha256", keyBytes(secret)).update(signed).digest("base64");
  return headers["webhook-signature"]
    .split(" ")
    .filter((entry) => entry.startsWith("v1,"))
    .some((entry) => safeEqual(entry.slice(3), expected));
}

function verifyHooklineSignature(secret, header, body) {
  const expected = crypto.createHmac("sha256", keyBytes(secret)).update(body).digest("hex");
  return header
    .split(",")
    .map((entry) => entry.trim().replace(/^sha256=/, ""))
    .some((hex) => safeEqual(hex, expected));
}

module.exports = { verifyStandardWebhooks, verifyHooklineSignature };
