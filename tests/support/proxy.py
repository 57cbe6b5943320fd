"""A TCP proxy on loopback that a test can cut, stall and restore: storage "goes down"
for the host behind it while Azurite itself keeps its data, as an outage of the network
path to a storage account does. Cut: every connection reset, new ones refused at once.
Stalled: connections are accepted and kept open but nothing is answered (bytes sent
either way are dropped), as a paused or overloaded account looks: only timeouts end a
request.

And a proxy that loses one queue reply on the way (`ReplyDroppingProxy`)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class CuttableProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._cut = threading.Event()
        self._stalled = threading.Event()
        self._stop = threading.Event()
        self._open: set[socket.socket] = set()
        self._held: set[socket.socket] = set()
        self.connections = 0  # accepted so far, whatever state the proxy was in
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """From now on every connection is reset, the open ones at once."""
        self._cut.set()
        with self._lock:
            for sock in list(self._open):
                _reset(sock)
            self._open.clear()

    def stall(self) -> None:
        """From now on nothing is answered: connections stay open, bytes are dropped."""
        self._stalled.set()

    def restore(self) -> None:
        """Answer again. After a stall the open connections are reset (their requests
        were dropped midway); clients reconnect."""
        if self._stalled.is_set():
            self._stalled.clear()
            with self._lock:
                for sock in [*self._open, *self._held]:
                    _reset(sock)
                self._open.clear()
                self._held.clear()
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        with self._lock:
            for sock in list(self._held):
                _reset(sock)
            self._held.clear()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            if self._cut.is_set():
                _reset(client)
                continue
            if self._stalled.is_set():  # accepted, never read: the client waits
                with self._lock:
                    self._held.add(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self._stalled.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


class ReplyDroppingProxy:
    """A TCP proxy (to Azurite's queue port, or to another proxy) that, once armed, drops
    the first reply carrying queue messages and resets that connection: storage has
    leased the messages, the host never hears of them, as when a connection is cut just
    after storage answered. `arm(then)` calls `then()` at that moment (to start an outage
    there)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._armed = threading.Event()
        self._then: Callable[[], Any] | None = None
        self.dropped = threading.Event()
        self.dropped_at = 0.0  # monotonic
        self.dropped_messages = 0  # how many the lost reply carried
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, then: Callable[[], Any] | None = None) -> None:
        self._then = then
        self._armed.set()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            for a, b, replies in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, replies), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while data := source.recv(65536):
                if replies and self._armed.is_set() and b"<QueueMessage>" in data:
                    self._armed.clear()
                    self.dropped_at = time.monotonic()
                    self.dropped_messages = data.count(b"<QueueMessage>")
                    if self._then is not None:
                        self._then()
                    self.dropped.set()
                    break
                sink.sendall(data)
        except OSError:
            pass
        _reset(source)
        _reset(sink)


def _reset(sock: socket.socket) -> None:
    """End the connection at once, as a broken path looks to the client. shutdown() first:
    close() alone does not end a socket another thread is blocked reading (the pipe)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def proxied_storage(azurite: Any) -> tuple[CuttableProxy, CuttableProxy, str]:
    """Proxies in front of Azurite's blob and queue ports, and the connection string a
    host under test uses to reach storage through them (tables stay direct)."""
    from devhost.azurite import connection_string

    blob, queue = CuttableProxy(azurite.blob_port), CuttableProxy(azurite.queue_port)
    return blob, queue, connection_string(blob.port, queue.port, azurite.table_port)
