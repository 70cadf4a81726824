"""examples/proxy.py as it runs in production: a real ASGI server with four worker processes, one of
them killed halfway, and upstream still sees one session id per key and no id shared by two keys.

Needs the examples extra (pip install -e '.[examples]'); without it the test is skipped, unless
SESSID_EXAMPLES=required (as CI sets it), where a missing extra is a failure."""

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import sessid

from conftest import is_uuid4

missing = [name for name in ("starlette", "httpx", "uvicorn", "gunicorn") if importlib.util.find_spec(name) is None]
if missing:
    if os.environ.get("SESSID_EXAMPLES") == "required":
        raise ImportError(f"SESSID_EXAMPLES=required, and the examples extra is not installed "
                          f"({', '.join(missing)} missing): pip install -e '.[examples]'")
    pytest.skip(f"needs the examples extra, pip install -e '.[examples]' ({', '.join(missing)} missing)",
                allow_module_level=True)

import httpx  # noqa: E402  (after the check above)

ROOT = Path(__file__).resolve().parent.parent
KEYS = [f"sk-example-{i}" for i in range(10)]
REQUESTS = 400
CLIENTS = 16
WORKERS = 4
SERVERS = {
    "uvicorn": ["-m", "uvicorn", "examples.proxy:app", "--workers", str(WORKERS), "--host", "127.0.0.1", "--port"],
    "gunicorn": ["-m", "gunicorn", "-w", str(WORKERS), "-k", "uvicorn.workers.UvicornWorker", "examples.proxy:app",
                 "--bind"],
}


# ---- the fake upstream: records what it receives, streams a reply in pieces ----


def reply_events(n: int) -> list[bytes]:
    return [f"event: {kind}\ndata: {json.dumps({'n': n, 'type': kind})}\n\n".encode()
            for kind in ("message_start", "content_block_delta", "message_stop")]


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, str | None]] = []      # (path, api key, session id)
        self.ports: list[int] = []                              # the proxy's end of each request's connection

    def handle_error(self, request: object, client_address: object) -> None:
        """A connection that a killed worker dropped: the request is sent again, nothing to report."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Upstream

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        key = self.headers.get("x-api-key") or self.headers.get("authorization", "").removeprefix("Bearer ")
        with self.server.lock:
            self.server.seen.append((self.path, key, self.headers.get("x-claude-code-session-id")))
            self.server.ports.append(self.client_address[1])
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in reply_events(body["n"]):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream():
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


# ---- the proxy's server and its workers ----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


@contextlib.contextmanager
def serving(server: str, env: dict[str, str], log: Path):
    """The proxy under server, on a free loopback port, in a process group of its own that is ended
    (the master asked first, then every process of the group killed) whatever happens."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, *SERVERS[server], f"127.0.0.1:{port}" if server == "gunicorn"
                                    else str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        yield process, f"http://127.0.0.1:{port}/v1/messages"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)              # workers that outlived their master
        process.wait(timeout=30)


def workers_of(master: int) -> list[int]:
    """The live worker processes of master: its children, less multiprocessing's helper."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == master and state != "Z" and b"resource_tracker" not in cmdline:
            found.append(int(entry))
    return found


def local_ports(pid: int, remote_port: int) -> set[int]:
    """The local ports of pid's TCP connections to 127.0.0.1:remote_port (a worker's pool to upstream)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if inode in inodes and remote == f"0100007F:{remote_port:04X}":
            ports.add(int(local.split(":")[1], 16))
    return ports


def wait_until_serving(process: subprocess.Popen, url: str, log: Path) -> list[int]:
    """Waits (60 s at most) until the proxy answers and has all its workers; returns their pids."""
    deadline = time.monotonic() + 60
    with httpx.Client(trust_env=False, timeout=5) as http:
        while True:
            assert process.poll() is None, f"the server ended with {process.returncode}:\n{log_tail(log)}"
            assert time.monotonic() < deadline, f"the server did not start in 60 s:\n{log_tail(log)}"
            with contextlib.suppress(httpx.TransportError):
                if http.post(url).status_code == 401 and len(workers := workers_of(process.pid)) == WORKERS:
                    return workers
            time.sleep(0.05)


# ---- the clients ----


async def send_all(url: str, on_halfway) -> dict[str, int]:
    """REQUESTS requests over KEYS from CLIENTS concurrent clients, each a new connection (so the
    kernel spreads them over the workers), half with x-api-key and half with a bearer token. A request
    that a dying worker drops is sent again (at most 5 times). on_halfway() runs once, when half of
    them have been answered."""
    todo = list(range(REQUESTS))
    counts = {"answered": 0, "sent again": 0}

    async def client() -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(trust_env=False, timeout=30, limits=limits) as http:
            while todo:
                n = todo.pop()
                key = KEYS[n % len(KEYS)]
                headers = {"x-api-key": key} if n // len(KEYS) % 2 else {"authorization": f"Bearer {key}"}
                for attempt in range(5):
                    try:
                        reply = await http.post(url, headers=headers, json={"n": n})
                        break
                    except httpx.TransportError:
                        counts["sent again"] += 1
                else:
                    raise AssertionError(f"request {n} failed 5 times")
                assert reply.status_code == 200, reply.text
                assert reply.content == b"".join(reply_events(n))
                counts["answered"] += 1
                if counts["answered"] == REQUESTS // 2:
                    on_halfway()

    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(CLIENTS))), timeout=300)
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("server, kv", [("uvicorn", "shared"), ("gunicorn", "shared"), ("uvicorn", "redis")])
def test_every_worker_sends_one_id_per_key_even_when_one_is_killed(request, tmp_path, upstream, server, kv):
    table = str(tmp_path / "proxy-table")
    env = {name: value for name, value in os.environ.items() if name != "SESSID_REDIS_URL"}
    env.update(UPSTREAM_URL=upstream.url, SESSID_SHARED=table, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    if kv == "redis":
        redis_server = request.getfixturevalue("redis_server")
        env["SESSID_REDIS_URL"] = f"redis://127.0.0.1:{redis_server.port}/0"
        import redis

        redis.Redis(port=redis_server.port).flushall()
    log = tmp_path / f"{server}.log"
    started = time.monotonic()
    try:
        with serving(server, env, log) as (process, url):
            workers = wait_until_serving(process, url, log)
            ready = time.monotonic()
            killed: list[int] = []

            def kill_one_worker() -> None:
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])

            counts = asyncio.run(send_all(url, kill_one_worker))
            done = time.monotonic()
            assert killed and killed[0] not in workers_of(process.pid)
            assert process.poll() is None, f"the server ended:\n{log_tail(log)}"
            # Which worker sent each request upstream, from the connections the live ones still hold.
            worker_of_port = {port: pid for pid in workers_of(process.pid)
                              for port in local_ports(pid, upstream.server_address[1])}
            per_worker = defaultdict(int)
            for port in upstream.ports:
                per_worker[worker_of_port.get(port, "closed or killed")] += 1
            assert len(per_worker.keys() - {"closed or killed"}) >= 2, f"one worker did all: {per_worker}"

        ids: dict[str, set[str | None]] = defaultdict(set)
        for path, key, session_id in upstream.seen:
            assert path == "/v1/messages"
            ids[key].add(session_id)
        assert sorted(ids) == sorted(KEYS)
        assert {key: len(seen) for key, seen in ids.items() if len(seen) != 1} == {}, "a key with several ids"
        one_id = {key: seen.pop() for key, seen in ids.items()}
        assert all(is_uuid4(session_id) for session_id in one_id.values())
        assert len(set(one_id.values())) == len(KEYS), "two keys with one id"
        assert len(upstream.seen) >= REQUESTS

        # And a process that is not a worker finds the same ids where the workers keep them.
        if kv == "redis":
            import redis

            store = sessid.Store(kv=redis.Redis(port=request.getfixturevalue("redis_server").port))
        else:
            store = sessid.Store(shared=table)
        assert {key: store.get(key) for key in KEYS} == one_id
    finally:
        if kv == "shared":
            sessid.remove_shared(table)

    print(f"\n{server} --workers {WORKERS}, ids in {kv}: started in {ready - started:.1f} s; {REQUESTS} requests "
          f"from {CLIENTS} clients in {done - ready:.1f} s; worker {killed[0]} killed after {REQUESTS // 2}; "
          f"{counts['sent again']} sent again; upstream saw {len(upstream.seen)} requests, "
          f"{len(set(one_id.values()))} ids for {len(KEYS)} keys, one each; requests per worker: "
          f"{dict(per_worker)}")
    for key in KEYS:
        print(f"  {key}  {one_id[key]}  ({sum(1 for _, k, _ in upstream.seen if k == key)} requests)")
