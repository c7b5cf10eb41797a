"""Drives a running Switchyard with the official `openai` and `anthropic` Python SDKs: tool calls (non-streamed
and streamed) through an Anthropic upstream with the openai SDK, and Anthropic's Messages API (`/v1/messages`:
plain, streamed, tools, typed errors) with the anthropic SDK, over models of either protocol. Prints a JSON
report on its last line; exits non-zero on any mismatch.
Env: SWITCHYARD_BASE_URL (the server's root), SWITCHYARD_API_KEY."""

import json
import os
import sys
import urllib.request
from decimal import Decimal

import anthropic
import openai

root = os.environ["SWITCHYARD_BASE_URL"].rstrip("/")
key = os.environ["SWITCHYARD_API_KEY"]
oa = openai.OpenAI(base_url=root + "/api/v1", api_key=key, max_retries=0)
an = anthropic.Anthropic(base_url=root, api_key=key, max_retries=0)
report = {}


def fail(msg):
    print(json.dumps({"ok": False, "error": msg, **report}))
    sys.exit(1)


def credits_used():
    req = urllib.request.Request(root + "/api/v1/credits", headers={"Authorization": "Bearer " + key})
    with urllib.request.urlopen(req) as r:
        return Decimal(str(json.loads(r.read(), parse_float=Decimal)["data"]["total_usage"]))


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

# openai SDK, tools through the Anthropic adapter: the call, then its result, then the answer.
first = oa.chat.completions.create(
    model="sdk/claude",
    messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    tools=[WEATHER],
    tool_choice="required",
    max_tokens=200,
)
calls = first.choices[0].message.tool_calls
if not calls or calls[0].function.name != "get_weather" or first.choices[0].finish_reason != "tool_calls":
    fail(f"no tool call: {first}")
args = json.loads(calls[0].function.arguments)
second = oa.chat.completions.create(
    model="sdk/claude",
    messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "18 C and sunny"},
    ],
    tools=[WEATHER],
    max_tokens=200,
)
if not second.choices[0].message.content or second.choices[0].finish_reason != "stop":
    fail(f"no answer after the tool result: {second}")
report["tool_args"] = args

# openai SDK, a streamed tool call: the arguments arrive in pieces and add up to JSON.
stream = oa.chat.completions.create(
    model="sdk/claude",
    messages=[{"role": "user", "content": "Weather in Rome?"}],
    tools=[WEATHER],
    tool_choice={"type": "function", "function": {"name": "get_weather"}},
    stream=True,
)
name, arguments, finish = None, "", None
for chunk in stream:
    if not chunk.choices:
        continue
    for tc in chunk.choices[0].delta.tool_calls or []:
        name = tc.function.name or name
        arguments += tc.function.arguments or ""
    finish = chunk.choices[0].finish_reason or finish
if name != "get_weather" or "city" not in json.loads(arguments) or finish != "tool_calls":
    fail(f"streamed tool call: {name} {arguments!r} {finish}")

# anthropic SDK against /v1/messages, over an OpenAI-protocol model and an Anthropic one.
before = credits_used()
for model in ("test/fast", "sdk/claude"):
    msg = an.messages.create(
        model=model,
        max_tokens=64,
        system="You are terse.",
        messages=[{"role": "user", "content": "Hello from the anthropic SDK"}],
    )
    if msg.type != "message" or msg.content[0].type != "text" or not msg.content[0].text:
        fail(f"{model}: unexpected message {msg}")
    if msg.usage.input_tokens <= 0 or msg.usage.output_tokens <= 0 or msg.stop_reason != "end_turn":
        fail(f"{model}: usage/stop {msg.usage} {msg.stop_reason}")

with an.messages.stream(
    model="test/fast", max_tokens=10, messages=[{"role": "user", "content": "Stream to me"}]
) as s:
    text = "".join(s.text_stream)
    final = s.get_final_message()
if len(text.split()) != 10 or final.stop_reason != "max_tokens" or final.usage.output_tokens != 10:
    fail(f"stream: {text!r} {final.stop_reason} {final.usage}")

tool_msg = an.messages.create(
    model="sdk/claude",
    max_tokens=200,
    tools=[{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}],
    tool_choice={"type": "any"},
    messages=[{"role": "user", "content": "Weather in Oslo?"}],
)
uses = [b for b in tool_msg.content if b.type == "tool_use"]
if not uses or tool_msg.stop_reason != "tool_use" or "city" not in uses[0].input:
    fail(f"messages tool use: {tool_msg}")
answer = an.messages.create(
    model="sdk/claude",
    max_tokens=200,
    tools=[{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}],
    messages=[
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": tool_msg.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "-3 C"}]},
    ],
)
if answer.stop_reason != "end_turn" or answer.content[-1].type != "text":
    fail(f"answer after tool_result: {answer}")
spent = credits_used() - before
if spent <= 0:
    fail("the Messages API calls were not billed")
report["messages_spent"] = str(spent)

try:
    an.messages.create(model="nobody/nothing", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    fail("unknown model did not fail")
except anthropic.NotFoundError:
    pass
try:
    anthropic.Anthropic(base_url=root, api_key="sk-sy-v1-bad", max_retries=0).messages.create(
        model="test/fast", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    fail("bad key did not fail")
except anthropic.AuthenticationError:
    pass
try:
    an.messages.create(model="test/fast", max_tokens=5, messages=[{"role": "robot", "content": "x"}])
    fail("bad role did not fail")
except anthropic.BadRequestError:
    pass

print(json.dumps({"ok": True, **report}))
