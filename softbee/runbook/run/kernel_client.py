"""The client a run's kernel manager hands nbclient: ready as soon as the kernel answers.

jupyter_client's ``wait_for_ready`` ends by emptying the IOPub channel until it has
been silent for 0.2 s: every run waited those 0.2 s, idle, between the kernel's
answer and its first cell (a tenth of a no-op run on the quiet machine). Here the
channel is emptied of what has arrived, waiting at most :data:`FLUSH_S` for each next
message. What arrives later (the kernel's "idle" after answering ``kernel_info``)
belongs to the ``kernel_info`` request, and nbclient reads only the messages whose
parent is the cell it is executing. Everything else is jupyter_client's: a
``kernel_info`` request answered on the shell channel and an IOPub message seen
(IOPub connected), asked again until then, within the caller's ``timeout``.

The client's sockets connect before the kernel has bound its ports (it is still
importing), and ZeroMQ retries a refused connection every 100 ms by default: the
kernel's answer waited up to 0.1 s (0.05 s on average) for the next retry. Its sockets
retry every :data:`RECONNECT_MS` instead (localhost connections refused in
microseconds, while the kernel starts).
"""

from __future__ import annotations

import math
import time
from queue import Empty
from typing import Any

#: How long the IOPub flush waits for each next message before the kernel is ready.
FLUSH_S = 0.02
#: How long each ``kernel_info`` request is waited for before it is sent again (jupyter_client's).
REPLY_S = 1.0
#: How long an IOPub message is waited for after the reply (jupyter_client's).
IOPUB_S = 0.2
#: How often the client's sockets retry connecting to a kernel not yet listening (ZeroMQ: 100).
RECONNECT_MS = 10

_CLIENT_CLASS: type | None = None


def client_class() -> type:
    """jupyter_client's AsyncKernelClient with :meth:`wait_for_ready` as described above."""
    global _CLIENT_CLASS  # noqa: PLW0603 - made once, on first use (jupyter_client is heavy)
    if _CLIENT_CLASS is not None:
        return _CLIENT_CLASS
    import zmq
    from jupyter_client.asynchronous import AsyncKernelClient

    class ReadyClient(AsyncKernelClient):  # type: ignore[misc]
        """Ready once the kernel answered and IOPub is connected: no 0.2 s of silence."""

        def _context_default(self) -> Any:
            """The client's own ZeroMQ context; its sockets retry every :data:`RECONNECT_MS`."""
            context = super()._context_default()
            context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
            return context

        async def wait_for_ready(self, timeout: float | None = None) -> None:
            """Wait for a ``kernel_info`` reply and an IOPub message; bounded by ``timeout``."""
            deadline = time.monotonic() + (math.inf if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=REPLY_S)
                except Empty:
                    pass
                else:
                    if reply["msg_type"] == "kernel_info_reply" and await _iopub_seen(self):
                        self._handle_kernel_info_reply(reply)
                        break
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")
            while await _iopub_seen(self, FLUSH_S):  # what has arrived, not 0.2 s of silence
                pass

    _CLIENT_CLASS = ReadyClient
    return ReadyClient


async def _iopub_seen(client: Any, timeout: float = IOPUB_S) -> bool:
    """Whether an IOPub message arrived within ``timeout`` (and was taken off the channel)."""
    try:
        await client.iopub_channel.get_msg(timeout=timeout)
    except Empty:
        return False
    return True
