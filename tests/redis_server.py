"""A throwaway redis-server for the tests: its own port on loopback, no persistence.

A server made with cluster=True is a cluster node; start() makes it a cluster of its own (it claims
every slot), while launch() only brings the process up, for a node that joins a bigger cluster
(redis_cluster.py) or rejoins one after a restart, with its nodes.conf kept in its dir."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(cluster: bool = False) -> int:
    """A free port; for a cluster node, one whose bus port (port + 10000) is free as well."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not cluster or (port + 10000 <= 65535 and port_is_free(port + 10000)):
            return port


class RedisServer:
    def __init__(self, executable: str, *, cluster: bool = False, port: int | None = None,
                 options: list[str] | None = None) -> None:
        self.executable = executable
        self.cluster = cluster
        self.port = free_port(cluster) if port is None else port
        self.options = list(options or [])
        self.dir = tempfile.mkdtemp(prefix="sessid-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.launch()
        if self.cluster:
            self.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
            deadline = time.monotonic() + 10
            while b"cluster_state:ok" not in self.command("CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the one-node cluster did not come up")
                time.sleep(0.05)

    def launch(self) -> None:
        """Starts the process and waits until it answers PING; claims no cluster slot."""
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir, "--protected-mode", "no"]
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file",
                     os.path.join(self.dir, "nodes.conf")]
        args += self.options
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def ping(self) -> bool:
        try:
            return b"PONG" in self.command("PING")
        except OSError:
            return False

    def command(self, *parts: str) -> bytes:
        """One command over a raw connection (RESP), so the fixture needs no client library."""
        payload = f"*{len(parts)}\r\n".encode() + b"".join(
            f"${len(p.encode())}\r\n{p}\r\n".encode() for p in parts
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(payload)
            reply = b""
            while not _complete(reply):
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError(f"redis-server on port {self.port} closed the connection")
                reply += chunk
            return reply


def _complete(reply: bytes) -> bool:
    """Whether a reply holds all of one bulk string, or one line of any other kind."""
    if not reply.endswith(b"\r\n"):
        return False
    if not reply.startswith(b"$"):
        return True
    header, _, rest = reply.partition(b"\r\n")
    length = int(header[1:])
    return length < 0 or len(rest) >= length + 2
