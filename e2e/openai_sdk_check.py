"""Drives a running Switchyard with the official `openai` Python SDK, streaming and not, and checks that
`usage.cost` is what GET /credits says was spent. Prints a JSON report on its last line; exits non-zero
on any mismatch. Env: SWITCHYARD_BASE_URL (…/api/v1), SWITCHYARD_API_KEY."""

import json
import os
import sys
import urllib.request
from decimal import Decimal

import openai

base = os.environ["SWITCHYARD_BASE_URL"]
key = os.environ["SWITCHYARD_API_KEY"]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)


def credits():
    req = urllib.request.Request(base + "/credits", headers={"Authorization": "Bearer " + key})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read(), parse_float=Decimal)["data"]


def fail(msg):
    print(json.dumps({"ok": False, "error": msg}))
    sys.exit(1)


before = Decimal(str(credits()["total_usage"]))

# Non-streaming.
resp = client.chat.completions.create(
    model="test/fast",
    messages=[{"role": "user", "content": "Hello from the openai SDK"}],
    max_tokens=64,
)
if resp.model != "test/fast" or not resp.id.startswith("gen-"):
    fail(f"unexpected id/model {resp.id} {resp.model}")
if not resp.choices[0].message.content:
    fail("empty completion")
cost1 = Decimal(str(resp.usage.model_extra["cost"]))
raw = client.chat.completions.with_raw_response.create(
    model="test/fast", messages=[{"role": "user", "content": "again"}], max_tokens=8
)
if raw.headers.get("x-generation-id") != raw.parse().id:
    fail("X-Generation-Id header does not match the id")
cost1 += Decimal(str(raw.parse().usage.model_extra["cost"]))

# Streaming: usage arrives in the final chunk.
stream = client.chat.completions.create(
    model="test/fast",
    messages=[{"role": "user", "content": "Stream to me"}],
    stream=True,
    stream_options={"include_usage": True},
)
text, usage = "", None
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage is not None:
        usage = chunk.usage
if not text or usage is None:
    fail("stream had no text or no usage chunk")
cost2 = Decimal(str(usage.model_extra["cost"]))

# Errors surface as the SDK's typed exceptions.
try:
    client.chat.completions.create(model="nobody/nothing", messages=[{"role": "user", "content": "x"}])
    fail("unknown model did not fail")
except openai.NotFoundError:
    pass
try:
    openai.OpenAI(base_url=base, api_key="sk-sy-v1-bad", max_retries=0).chat.completions.create(
        model="test/fast", messages=[{"role": "user", "content": "x"}]
    )
    fail("bad key did not fail")
except openai.AuthenticationError:
    pass

after = Decimal(str(credits()["total_usage"]))
if after - before != cost1 + cost2:
    fail(f"credits moved by {after - before}, responses said {cost1 + cost2}")
print(json.dumps({"ok": True, "non_stream_cost": float(cost1), "stream_cost": float(cost2), "spent": str(after - before)}))
