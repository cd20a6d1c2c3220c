"""Schemathesis hooks for .ci/schemathesis.

A phone number's validity (libphonenumber metadata), a region hint's existence and a
tenant's declared purposes cannot be written as JSON Schema, so a schema-valid random
string there is answered 400 `invalid_phone` / `unknown_purpose`, which the
positive_data_acceptance check would report. Before each call, string values of those
fields are replaced by real ones (numbers seeded in the vault, real regions, the
tenant's purposes). Schemathesis re-validates a case a `before_call` hook changed, so
a case stays positive or negative by what is actually sent: every other field, and
every non-string value of these fields, goes out as generated.
"""

import os
import zlib

import schemathesis

# Valid numbers (E.164): some seeded in the vault, some new (.ci/schemathesis).
NUMBERS = [line.strip() for line in open(os.environ["PV_ST_NUMBERS"], encoding="utf-8") if line.strip()]
REGIONS = ["GB", "US", "FR", "DE", "gb"]
PURPOSES = ["otp", "support", "marketing"]


def pick(choices, generated):
    """A real value in place of a generated one, chosen by it: the same run (seed) sends
    the same requests (no `random` inside hypothesis' generation)."""
    return choices[zlib.crc32(generated.encode("utf-8", "surrogatepass")) % len(choices)]


def _fix(body):
    if not isinstance(body, dict):
        return
    if isinstance(body.get("phone"), str):
        # In E.164, so any region hint sent beside it is ignored.
        body["phone"] = pick(NUMBERS, body["phone"])
    if isinstance(body.get("region"), str) and len(body["region"]) == 2:
        body["region"] = pick(REGIONS, body["region"])
    if isinstance(body.get("purpose"), str) and body["purpose"]:
        body["purpose"] = pick(PURPOSES, body["purpose"])
    for key in ("purposes", "consents"):
        value = body.get(key)
        if isinstance(value, list):
            body[key] = [pick(PURPOSES, v) if isinstance(v, str) and v else v for v in value]
    # Inbound SMS (JSON and Twilio's form): a real sender and a real sending number.
    for key in ("from", "From", "to", "To"):
        if isinstance(body.get(key), str):
            body[key] = pick(NUMBERS, body[key])
    if isinstance(body.get("tenant"), str) and body["tenant"]:
        body["tenant"] = "shop"
    items = body.get("items")
    if isinstance(items, list):
        for item in items:
            _fix(item)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    _fix(case.body)
    if isinstance(case.query, dict) and isinstance(case.query.get("purpose"), str) and case.query["purpose"]:
        case.query["purpose"] = pick(PURPOSES, case.query["purpose"])
