"""A real Redis Cluster of three masters on loopback, for the tests and the outage benchmark.

Each node is a RedisServer(cluster=True) brought up without claiming slots; `redis-cli --cluster
create` joins them and splits the 16384 slots between them. A short cluster-node-timeout makes the
survivors declare a killed node failed within a few seconds, and with cluster-require-full-coverage
(the default) the whole cluster then answers CLUSTERDOWN, as a deployed one does. A node restarted
on its port and dir reads its nodes.conf back and rejoins with its slots, but not its data: nothing
is persisted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from redis_server import RedisServer, free_port

SLOTS = 16384


def redis_cli_beside(server_executable: str) -> str:
    """The redis-cli of the same installation as redis-server (Debian's package brings both)."""
    beside = os.path.join(os.path.dirname(server_executable), "redis-cli")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("redis-cli is not installed beside redis-server")
    return found


def distinct_ports(count: int) -> list[int]:
    """Free ports whose bus ports (+10000) are free too, none of them equal to another's."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(cluster=True)
        taken = {p for q in ports for p in (q, q + 10000)}
        if port not in taken and port + 10000 not in taken:
            ports.append(port)
    return ports


class LocalCluster:
    def __init__(self, server_executable: str, *, masters: int = 3,
                 node_timeout_ms: int = 1000) -> None:
        self.cli = redis_cli_beside(server_executable)
        options = ["--cluster-node-timeout", str(node_timeout_ms)]
        self.nodes = [RedisServer(server_executable, cluster=True, port=port, options=options)
                      for port in distinct_ports(masters)]

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.nodes]

    def start(self, timeout: float = 60) -> None:
        """Launches every node, joins them into one cluster and waits until all report ok."""
        try:
            for node in self.nodes:
                node.launch()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            created = subprocess.run(
                [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
                 "--cluster-yes"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )
            if created.returncode != 0:
                raise RuntimeError("redis-cli --cluster create failed:\n"
                                   + created.stdout.decode(errors="replace"))
            self.wait_until("ok", timeout=timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def live_nodes(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def info(self, node: RedisServer) -> dict[str, str]:
        """CLUSTER INFO of one node as a dict; empty when the node does not answer."""
        try:
            reply = node.command("CLUSTER", "INFO").decode()
        except OSError:
            return {}
        return dict(re.findall(r"^(\w+):(\S*)", reply, re.MULTILINE))

    def reports(self, state: str, node: RedisServer) -> bool:
        info = self.info(node)
        if info.get("cluster_state") != state:
            return False
        if state != "ok":
            return True
        # ok in full: every slot served, every node known, and none of them flagged as failing
        return (info.get("cluster_slots_ok") == str(SLOTS)
                and info.get("cluster_known_nodes") == str(len(self.nodes))
                and info.get("cluster_slots_pfail") == "0" and info.get("cluster_slots_fail") == "0")

    def wait_until(self, state: str, timeout: float = 30) -> float:
        """Waits until every live node reports cluster_state:<state>; returns the seconds it took."""
        started = time.monotonic()
        while not all(self.reports(state, node) for node in self.live_nodes()):
            if time.monotonic() - started > timeout:
                states = {node.port: self.info(node).get("cluster_state") for node in self.nodes}
                raise RuntimeError(f"the cluster did not reach state {state!r} in {timeout} s: "
                                   f"{states}")
            time.sleep(0.05)
        return time.monotonic() - started

    def kill(self, index: int) -> None:
        """Kills one node (SIGKILL); its dir and nodes.conf stay for restart()."""
        self.nodes[index].stop()

    def restart(self, index: int, timeout: float = 30) -> float:
        """Starts a killed node again on its port and dir and waits until the cluster is ok."""
        self.nodes[index].launch()
        return self.wait_until("ok", timeout=timeout)

    def slot_owners(self) -> list[int]:
        """For each of the 16384 slots, the index of the node that serves it, from the slot map of a
        live node (-1 for a slot nobody serves)."""
        by_port = {node.port: index for index, node in enumerate(self.nodes)}
        for node in self.live_nodes():
            try:
                table = node.command("CLUSTER", "NODES").decode()
            except OSError:
                continue
            owners = [-1] * SLOTS
            for line in table.splitlines():
                fields = line.split()
                if len(fields) < 9 or "master" not in fields[2].split(","):
                    continue
                index = by_port[int(fields[1].split("@")[0].rsplit(":", 1)[1])]
                for served in fields[8:]:
                    if served.startswith("["):       # a slot on its way in or out, not served yet
                        continue
                    first, _, last = served.partition("-")
                    for slot in range(int(first), int(last or first) + 1):
                        owners[slot] = index
            return owners
        raise RuntimeError("no node of the cluster answers CLUSTER NODES")

    def key_slot(self, name: str) -> int:
        """The slot of a key as the server computes it (CLUSTER KEYSLOT)."""
        reply = self.live_nodes()[0].command("CLUSTER", "KEYSLOT", name)
        return int(reply[1:].strip())

    def flush(self) -> None:
        """Empties every live node and resets its INFO commandstats."""
        for node in self.live_nodes():
            node.command("FLUSHALL")
            node.command("CONFIG", "RESETSTAT")
