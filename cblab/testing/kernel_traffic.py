"""What a JupyterLab page and its kernels say to each other, message by message.

`KernelTraffic(page)` listens to the page's kernel websockets (JupyterLab 4's
binary ``v1.kernel.websocket.jupyter.org`` frames, or JSON ones) and keeps one
`Message` per frame while `recording` is on: its direction, channel, type, for a
widget update the state keys it carries, and its size. Attach it before the
notebook opens: a websocket opened earlier is not seen. (The page's own counters,
``window.__cblabComm`` from `cblab.testing.browser.KERNEL_WATCH_JS`, count comm
messages per state key for `page_diagnosis`; this sees the wire: sizes and echoes.)
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

__all__ = ["KernelTraffic", "Message", "parse_frame"]


@dataclass(frozen=True)
class Message:
    sent: bool  # page -> kernel
    channel: str
    msg_type: str  # "comm_msg", "status", ...
    method: str | None  # a comm_msg's "update", "echo_update", ...
    keys: tuple[str, ...]  # the widget state keys a comm_msg carries
    size: int  # bytes in the frame


def parse_frame(payload: bytes | str, *, sent: bool) -> Message | None:
    """One frame as a `Message`; None for a frame that is not a kernel message."""
    try:
        if isinstance(payload, (bytes, bytearray)):
            # v1: count, offsets, then channel, header, parent, metadata, content, buffers
            (count,) = struct.unpack_from("<Q", payload)
            offsets = struct.unpack_from(f"<{count}Q", payload, 8)
            part = [bytes(payload[a:b]) for a, b in zip(offsets, (*offsets[1:], len(payload)), strict=True)]
            channel = part[0].decode()
            header, content = json.loads(part[1]), json.loads(part[4]) if count > 4 else {}
        else:
            message = json.loads(payload)
            channel, header, content = message["channel"], message["header"], message["content"]
    except (ValueError, KeyError, IndexError, struct.error, UnicodeDecodeError):
        return None
    data: dict[str, Any] = (content.get("data") or {}) if isinstance(content, dict) else {}
    state = data.get("state") or {}
    return Message(sent=sent, channel=channel, msg_type=header.get("msg_type", ""),
                   method=data.get("method"), keys=tuple(sorted(state)),
                   size=len(payload))


class KernelTraffic:
    def __init__(self, page: Any) -> None:
        self.messages: list[Message] = []
        self.recording = False
        page.on("websocket", self._watch)

    def _watch(self, socket: Any) -> None:
        if "/api/kernels/" not in socket.url:
            return
        socket.on("framesent", lambda payload: self._keep(payload, sent=True))
        socket.on("framereceived", lambda payload: self._keep(payload, sent=False))

    def _keep(self, payload: bytes | str, *, sent: bool) -> None:
        if self.recording and (message := parse_frame(payload, sent=sent)) is not None:
            self.messages.append(message)

    def updates(self, key: str, *, sent: bool) -> list[Message]:
        """Widget updates carrying `key`, sent by the page (True) or received."""
        return [m for m in self.messages
                if m.sent == sent and m.msg_type == "comm_msg" and key in m.keys]
