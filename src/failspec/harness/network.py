"""Addresses on 127.0.0.1 that fail in a known way: nobody listens, or nobody answers."""

from __future__ import annotations

import socket


class DeadAddress:
    """A port on 127.0.0.1 held by the suite: bound but not listening (connections are
    refused), or listening without ever accepting (connections hang in the startup
    handshake until the client's connect timeout)."""

    def __init__(self, *, answers_handshake: bool) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        if answers_handshake:
            self.socket.listen(8)  # the kernel completes the TCP handshake; nobody reads
        self.host, self.port = self.socket.getsockname()

    def close(self) -> None:
        self.socket.close()


def refusing() -> DeadAddress:
    return DeadAddress(answers_handshake=False)


def silent() -> DeadAddress:
    return DeadAddress(answers_handshake=True)
