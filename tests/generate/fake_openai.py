"""A real HTTP server on 127.0.0.1 that speaks OpenAI chat completions, with deterministic answers.

Answers derive from the prompt: a generation prompt gets N pairs built from its passage; a judge prompt
gets scores from the answer's length. Faults on demand: `faults` is a queue of statuses for the next
requests (429 with Retry-After, 500; "slow": answer after `slow_s`; "garbage": 200 with an HTML body); a passage containing MALFORMED gets invalid JSON until the
conversation holds the stricter re-ask; ALWAYS_BAD gets invalid JSON every time; BADPAIR makes the
second pair's difficulty invalid. A respond prompt gets `Response to: <instruction>` (EMPTY_FIRST: blank,
NULL_FIRST: a null content, until the stricter re-ask); a regenerate prompt gets `Revised response to: <instruction>`. `delay_s`
slows every answer; `prompts` records each conversation's user prompt.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, retry_after: str = "0", delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.prompts: list[str] = []
        self.requests = 0
        self.completions = 0
        self.by_model: Counter[str] = Counter()
        self.faults: list[int | str] = []
        self.slow_s = 1.0
        self.retry_after = retry_after
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.requests += 1
                    fault = owner.faults.pop(0) if owner.faults else None
                if fault == "slow":
                    time.sleep(owner.slow_s)
                    fault = None
                if fault == "garbage":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.end_headers()
                    self.wfile.write(b"<html><body>502 Bad Gateway (proxy)</body></html>")
                    return
                if isinstance(fault, int):
                    self.send_response(fault)
                    if fault == 429:
                        self.send_header("Retry-After", owner.retry_after)
                    self.end_headers()
                    self.wfile.write(b'{"error": "injected"}')
                    return
                if owner.delay_s:
                    time.sleep(owner.delay_s)
                content = answer(body["messages"])
                with owner.lock:
                    owner.prompts.append(next(m["content"] for m in body["messages"] if m["role"] == "user"))
                    owner.completions += 1
                    owner.by_model[body["model"]] += 1
                prompt_words = sum(len(m["content"].split()) for m in body["messages"])
                doc = {
                    "id": "x",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": prompt_words,
                        "completion_tokens": len((content or "").split()),
                        "total_tokens": 0,
                    },
                }
                raw = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client killed mid-request
                    self.wfile.write(raw)

        class Server(ThreadingHTTPServer):
            # the stdlib default backlog is 5; the client opens up to 64 connections at once, and on a
            # busy machine the overflow was refused and retried, which made retry counts flaky
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _quoted(text: str, label: str) -> str:
    return text.split(f'{label}:\n"""\n', 1)[1].split('\n"""', 1)[0]


def answer(messages: list[dict[str, str]]) -> str | None:
    first = next(m["content"] for m in messages if m["role"] == "user")
    strict = any(m["role"] == "assistant" for m in messages)
    if "A reviewer rejected the previous response" in first:
        return f"Revised response to: {_quoted(first, 'Instruction')}"
    if "Write the response to the instruction below" in first:
        instruction = _quoted(first, "Instruction")
        if "NULL_FIRST" in instruction and not strict:
            return None  # as mlx_lm sends when the first token ends the answer
        return "  " if "EMPTY_FIRST" in instruction and not strict else f"Response to: {instruction}"
    if "strict reviewer" in first:
        resp = first.rsplit("Answer:", 1)[1]
        score = len(resp) % 10 + 1
        doc: dict[str, Any] = {k: score for k in ("correctness", "helpfulness", "clarity", "safety")}
        if "groundedness" in first:
            doc["groundedness"] = max(1, score - 1)
        doc["reason"] = f"length {len(resp)}"
        return json.dumps(doc)
    if "ALWAYS_BAD" in first or ("MALFORMED" in first and not strict):
        return '{"pairs": [{"question": "unterminated'
    n = int(re.search(r"write exactly (\d+)", first).group(1))
    cid = re.search(r"Passage \((.*?)\):", first).group(1)
    words = first.rsplit('"""', 2)[1].split()
    pairs = [
        {
            "question": f"What does {cid} say, point {i}?",
            "answer": " ".join(words[i : i + 8]) or "nothing",
            "reasoning": f"stated in {cid}",
            "difficulty": "wrong" if ("BADPAIR" in first and i == 1) else ("easy", "medium", "hard")[i % 3],
            "source_chunk": cid,
        }
        for i in range(n)
    ]
    text = json.dumps({"pairs": pairs})
    return f"```json\n{text}\n```" if "FENCED" in first else text
