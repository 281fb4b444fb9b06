"""kernel_client: ready once the kernel answered and IOPub is connected, without 0.2 s of silence."""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

import pytest
from jupyter_core.utils import run_sync

from softbee.runbook.run import kernel_client
from softbee.runbook.run.kernel_client import client_class


class Channel:
    """A channel that hands out its messages, then is empty (at once: nothing really waits)."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = list(messages)
        self.waits: list[float] = []

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        self.waits.append(timeout)
        if not self.messages:
            raise Empty
        return self.messages.pop(0)


def _client(shell: list[dict[str, Any]], iopub: list[dict[str, Any]], alive: bool = True) -> Any:
    class Fake(client_class()):  # type: ignore[misc] # the real class's channels are sockets
        shell_channel = property(lambda self: self._shell)
        iopub_channel = property(lambda self: self._iopub)

    client = Fake()
    client.__dict__.update(_shell=Channel(shell), _iopub=Channel(iopub), sent=[], handled=[])
    client.kernel_info = lambda: client.sent.append("kernel_info")
    client._handle_kernel_info_reply = lambda msg: client.handled.append(msg["msg_type"])

    async def is_alive() -> bool:
        return alive

    client._async_is_alive = is_alive
    return client


REPLY = {"msg_type": "kernel_info_reply", "content": {}}
STATUS = {"msg_type": "status", "content": {"execution_state": "busy"}}


def test_ready_after_the_reply_and_an_iopub_message_and_the_flush_does_not_wait_for_silence():
    client = _client([REPLY], [STATUS, STATUS, STATUS])

    run_sync(client.wait_for_ready)(timeout=5)

    assert client.sent == ["kernel_info"] and client.handled == ["kernel_info_reply"]
    assert client._iopub.messages == []  # what had arrived was taken off the channel
    assert client._iopub.waits[1:] == [kernel_client.FLUSH_S] * 3  # not IOPUB_S (0.2 s)
    assert kernel_client.FLUSH_S < kernel_client.IOPUB_S


def test_asks_again_until_iopub_is_connected():
    client = _client([{"msg_type": "other"}, REPLY, REPLY], [], alive=True)
    client._iopub.messages = []

    async def connect_on_second_reply(timeout: float | None = None) -> dict[str, Any]:
        client._iopub.waits.append(timeout)
        if len(client.sent) < 3:
            raise Empty
        client._iopub.get_msg = Channel([]).get_msg  # then silent
        return STATUS

    client._iopub.get_msg = connect_on_second_reply
    run_sync(client.wait_for_ready)(timeout=5)

    assert client.sent == ["kernel_info"] * 3 and client.handled == ["kernel_info_reply"]


def test_a_kernel_that_never_answers_fails_within_the_timeout():
    client = _client([], [])
    began = time.monotonic()

    with pytest.raises(RuntimeError, match="didn't respond in 0.05 seconds"):
        run_sync(client.wait_for_ready)(timeout=0.05)

    assert time.monotonic() - began < 5


def test_a_kernel_that_died_says_so():
    client = _client([], [], alive=False)

    with pytest.raises(RuntimeError, match="died before replying"):
        run_sync(client.wait_for_ready)(timeout=5)


def test_its_sockets_retry_a_kernel_not_yet_listening_every_10_ms_not_100():
    import zmq

    client = client_class()()
    try:
        socket = client.context.socket(zmq.DEALER)
        try:
            assert socket.getsockopt(zmq.RECONNECT_IVL) == kernel_client.RECONNECT_MS == 10
        finally:
            socket.close(linger=0)
        plain = zmq.Context()
        assert plain.socket(zmq.DEALER).getsockopt(zmq.RECONNECT_IVL) == 100  # ZeroMQ's default
        plain.destroy(linger=0)
    finally:
        client.context.destroy(linger=0)
