"""A handshake-era MCP server over stdio, written by hand: silent on anything before
`initialize` (as older SDKs are), one tool `echo`. The stdio bridge must fall back to
the handshake for it."""

from __future__ import annotations

import json
import sys

INFO = {"name": "legacy-echo", "version": "0.1"}


def main() -> None:
    initialized = False
    for line in sys.stdin:
        message = json.loads(line)
        method, ident = message.get("method"), message.get("id")
        if ident is None or "method" not in message:
            continue  # notifications, answers
        if method == "initialize":
            initialized = True
            result = {"protocolVersion": "2025-06-18", "serverInfo": INFO,
                      "capabilities": {"tools": {}}, "instructions": "legacy"}
        elif not initialized:
            continue  # silent before the handshake
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            text = json.dumps(message["params"].get("arguments", {}))
            result = {"content": [{"type": "text", "text": text}]}
        else:
            answer = {"jsonrpc": "2.0", "id": ident,
                      "error": {"code": -32601, "message": "Method not found"}}
            print(json.dumps(answer), flush=True)
            continue
        print(json.dumps({"jsonrpc": "2.0", "id": ident, "result": result}), flush=True)


if __name__ == "__main__":
    main()
