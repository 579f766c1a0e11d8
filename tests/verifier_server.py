"""A small real GSM8K verifier over HTTP (Starlette on uvicorn), for the remote-reward tests and
benchmark, with faults chosen by the completion text:

    FAULT:slow=S     answers after S seconds          FAULT:500 / FAULT:429   always that status
    FAULT:500once    500 on the first call for this completion, then a good answer
    FAULT:malformed  a 200 whose body is not JSON     FAULT:drop   the connection dropped mid-body
    FAULT:nofield    JSON without the score field
    TOKENS=N         the answer also says `usage.total_tokens: N` (what a judge reports it cost)

The score: 1.0 when the completion's `<answer>` block holds the gold number, else 0.0; `null`
when the row has no gold answer. Started on 127.0.0.1 on a free port, in a thread.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


ANSWER = re.compile(r"<answer>\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)\s*</answer>")
FAULT = re.compile(r"FAULT:(\w+)(?:=([0-9.]+))?")
TOKENS = re.compile(r"TOKENS=([0-9]+)")


def gsm8k_score(completion: str, answer: object) -> float | None:
    if answer is None:
        return None
    found = ANSWER.search(completion or "")
    if not found:
        return 0.0
    try:
        return float(float(found.group(1).replace(",", "")) == float(str(answer).replace(",", "")))
    except ValueError:
        return 0.0


class Verifier:
    """The app and its counters (`calls` per completion: how often each was asked)."""

    def __init__(self):
        self.calls: Counter[str] = Counter()
        self.app = Starlette(routes=[Route("/verify", self.verify, methods=["POST"])])

    async def verify(self, request: Request):
        body = await request.json()
        completion = str(body.get("completion", ""))
        self.calls[completion] += 1
        fault = FAULT.search(completion)
        kind = fault.group(1) if fault else None
        if kind == "slow":
            await asyncio.sleep(float(fault.group(2) or 5))
        elif kind in ("500", "429"):
            return PlainTextResponse("injected", status_code=int(kind))
        elif kind == "500once" and self.calls[completion] == 1:
            return PlainTextResponse("injected once", status_code=500)
        elif kind == "malformed":
            return PlainTextResponse('{"score": 1.0', media_type="application/json")
        elif kind == "nofield":
            return JSONResponse({"verdict": "yes"})
        elif kind == "drop":
            async def dropped():
                yield b'{"sco'
                raise ConnectionResetError("injected drop")
            return StreamingResponse(dropped(), media_type="application/json")
        answer = {"score": gsm8k_score(completion, body.get("answer"))}
        if tokens := TOKENS.search(completion):
            answer["usage"] = {"total_tokens": int(tokens.group(1))}
        return JSONResponse(answer)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Running:
    """`with Running() as server:` a verifier on `server.url` until the block ends."""

    def __init__(self):
        self.verifier = Verifier()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/verify"
        config = uvicorn.Config(self.verifier.app, host="127.0.0.1", port=self.port, log_level="critical",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test verifier did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
