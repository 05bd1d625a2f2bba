"""A stub model API on loopback, so the real agent CLIs run end to end offline.

It speaks just enough of two wire formats for Claude Code and OpenCode to
complete a turn:

* Anthropic ``POST /v1/messages`` (streaming SSE and plain JSON), which
  Claude Code uses through ``ANTHROPIC_BASE_URL``;
* OpenAI ``POST /v1/chat/completions`` (streaming SSE and plain JSON), which
  OpenCode uses through a provider ``baseURL``.

Every answer is ``STUB-ANSWER: <last user text>`` so a test can tell which
prompt an answer belongs to. Each request is appended to ``--log`` as one
JSON line (path, model, stream flag) for tests that check what was asked.

On the Anthropic API the stub can also act as a prompt-injected model that uses
Claude Code's own tools: a line ``RUN-BASH: <command>`` in the last user
message is answered with a ``tool_use`` block for the ``Bash`` tool (stop
reason ``tool_use``); the request that carries its ``tool_result`` is answered
with ``STUB-ANSWER: tool-done`` followed by the result's text, so a test reads
what the command printed in the agent's final answer.

Run: ``python -m testbed.stub_model --host 127.0.0.1 --port 0`` prints
``LISTENING <port>`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

ANSWER_PREFIX = "STUB-ANSWER: "
RUN_BASH_PREFIX = "RUN-BASH: "
TOOL_DONE = ANSWER_PREFIX + "tool-done"
BASH_TOOL = "Bash"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
        return "\n".join(parts)
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The last user message's text, stripped of system reminders."""
    for message in reversed(messages):
        if message.get("role") == "user":
            text = _text_of(message.get("content"))
            lines = [line for line in text.splitlines() if line.strip()]
            kept = [line for line in lines if not line.lstrip().startswith("<")]
            return (kept[-1] if kept else (lines[-1] if lines else "")).strip()
    return ""


def answer_for(messages: list[dict[str, Any]]) -> str:
    return ANSWER_PREFIX + last_user_text(messages)


def _last_user_message(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((m for m in reversed(messages) if m.get("role") == "user"), None)


def bash_request(messages: list[dict[str, Any]]) -> str | None:
    """The command of a ``RUN-BASH: <command>`` line in the last user message, if any.

    The whole text is searched (not just the last line): Claude Code adds system
    reminders and may split the prompt into several text blocks."""
    message = _last_user_message(messages)
    if message is None:
        return None
    for line in _text_of(message.get("content")).splitlines():
        if line.startswith(RUN_BASH_PREFIX):
            return line[len(RUN_BASH_PREFIX):]
    return None


def tool_results(messages: list[dict[str, Any]]) -> list[str] | None:
    """The texts of the ``tool_result`` blocks of the last user message; None if it has none.

    A result's content is a string or a list of blocks (text, images); only text is kept."""
    message = _last_user_message(messages)
    content = message.get("content") if message is not None else None
    if not isinstance(content, list):
        return None
    results = [block for block in content if isinstance(block, dict) and block.get("type") == "tool_result"]
    if not results:
        return None
    return [_text_of(block.get("content")) for block in results]


def anthropic_content(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The assistant's content blocks and stop reason for one Anthropic request."""
    results = tool_results(messages)
    if results is not None:
        return [{"type": "text", "text": "\n".join([TOOL_DONE, *results])}], "end_turn"
    command = bash_request(messages)
    if command is not None:
        call = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": BASH_TOOL,
                "input": {"command": command, "description": "test"}}
        return [call], "tool_use"
    return [{"type": "text", "text": answer_for(messages)}], "end_turn"


class StubModel:
    def __init__(self, log: Path | None) -> None:
        self.log = log

    def record(self, request: web.Request, body: dict[str, Any]) -> None:
        if self.log is None:
            return
        entry = {
            "path": request.path,
            "model": body.get("model"),
            "stream": bool(body.get("stream")),
            "user": last_user_text(body.get("messages", [])),
            "bash": bash_request(body.get("messages", [])),
            "tool_results": tool_results(body.get("messages", [])),
        }
        with self.log.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")

    async def anthropic_messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body)
        content, stop_reason = anthropic_content(body.get("messages", []))
        model = body.get("model", "stub")
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        usage = {"input_tokens": 10, "output_tokens": 5}
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        await send(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 1},
                },
            },
        )
        for index, block in enumerate(content):
            if block["type"] == "tool_use":
                start = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            else:
                start = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            await send("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
            await send("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": 5},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response

    async def count_tokens(self, request: web.Request) -> web.Response:
        return web.json_response({"input_tokens": 10})

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.record(request, body)
        text = answer_for(body.get("messages", []))
        model = body.get("model", "stub")
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": 0,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def chunk(delta: dict[str, Any], finish: str | None, with_usage: bool = False) -> None:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if with_usage:
                data["usage"] = usage
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        await chunk({"role": "assistant", "content": ""}, None)
        await chunk({"content": text}, None)
        await chunk({}, "stop", with_usage=True)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "stub-model", "object": "model"}]})

    async def fallback(self, request: web.Request) -> web.Response:
        if self.log is not None:
            with self.log.open("a") as handle:
                handle.write(json.dumps({"path": request.path, "method": request.method}) + "\n")
        return web.json_response({}, status=404)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.anthropic_messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_post("/v1/chat/completions", self.openai_chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_route("*", "/{tail:.*}", self.fallback)
        return app


async def serve(host: str, port: int, log: Path | None) -> None:
    runner = web.AppRunner(StubModel(log).app())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp keeps the bound server private
    print(f"LISTENING {bound}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.host, args.port, args.log))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
