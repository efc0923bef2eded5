"""A recording server: one scripted fake upstream served on loopback until Ctrl-C (or
``--seconds``), printing each request as it arrives (method, path, query, the headers with
secrets masked, the body's top-level keys) and saving them all as JSON (see `upstream.capture`)
into ``--out`` when it stops. Point any client at the printed URL to see what it sends.

    uv run python tests/clients/record.py anthropic --out /tmp/capture \\
        --trigger TASK --tool Bash --arguments '{"command": "ls"}' --final "Done."

Protocols: ``anthropic`` (ANTHROPIC_BASE_URL = the URL), ``responses`` and ``chat`` (an OpenAI
base URL = the URL + ``/v1``), ``gemini`` (GOOGLE_GEMINI_BASE_URL = the URL). Without
``--tool`` every request gets ``--final``; without ``--trigger`` every request is the scripted
one. ``--side`` is the answer to requests without the trigger (e.g. JSON for a router).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clients.anthropic_fake import AnthropicUpstream
from clients.chat_fake import ChatUpstream
from clients.gemini_fake import GeminiUpstream
from clients.responses_fake import ResponsesUpstream
from clients.script import Script, ToolCall
from clients.targets import save_captures
from clients.upstream import ScriptedUpstream, capture
from compatgate.testing import Received

__all__ = ["main"]

FAKES: dict[str, type[ScriptedUpstream]] = {
    "anthropic": AnthropicUpstream, "responses": ResponsesUpstream, "chat": ChatUpstream,
    "gemini": GeminiUpstream}


def _print(request: Received) -> None:
    record = capture(request)
    body = record["body"]
    keys = sorted(body) if isinstance(body, dict) else type(body).__name__
    print(f"{record['method']} {record['path']}?{record['query']}  body keys: {keys}")
    for name, value in record["headers"].items():
        print(f"    {name}: {value[:200]}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("protocol", choices=sorted(FAKES))
    parser.add_argument("--out", type=Path, help="save the requests here as JSON on exit")
    parser.add_argument("--trigger", default="", help="text that marks the scripted request")
    parser.add_argument("--tool", help="the tool the fake model calls")
    parser.add_argument("--arguments", default="{}", help="the call's arguments as JSON")
    parser.add_argument("--freeform", help="the input of a freeform (custom) tool call")
    parser.add_argument("--call-id", default="call_RecordedToolCall0001")
    parser.add_argument("--final", default="Done.", help="the text after the tool result")
    parser.add_argument("--side", default="OK", help="the answer to other requests")
    parser.add_argument("--key", help="the key clients must present (default: any)")
    parser.add_argument("--seconds", type=float, help="stop after this long")
    args = parser.parse_args(argv)
    call = ToolCall(args.tool, json.loads(args.arguments), args.call_id,
                    args.freeform) if args.tool else None
    script = Script(trigger=args.trigger, final_text=args.final, call=call, side_text=args.side)
    fake = FAKES[args.protocol](script, key=args.key)
    fake.on_request = _print
    with fake.served():
        print(f"recording {args.protocol} requests at {fake.url}", flush=True)
        try:
            threading.Event().wait(args.seconds)
        except KeyboardInterrupt:
            pass
    print(f"steps: {script.steps}; problems: {fake.problems + script.problems}")
    if args.out:
        import os

        os.environ["COMPATGATE_CLIENT_CAPTURES"] = str(args.out.parent)
        save_captures(fake, args.out.name)
        print(f"saved {len(fake.received)} requests in {args.out}")


if __name__ == "__main__":
    main()
