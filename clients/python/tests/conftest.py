"""A live Rostra server for the tests: a one-server cluster started as a child process
(``ROSTRA_BIN``, default the debug build in ``$CARGO_TARGET_DIR``) on loopback with
ephemeral ports and its own data dir; restartable on the same ports and data."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import grpc
import pytest

from rostra.v1 import catalog_pb2, catalog_pb2_grpc

DEADLINE = 60.0


def rostra_bin() -> str:
    if "ROSTRA_BIN" in os.environ:
        return os.environ["ROSTRA_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/rostra/target"))
    return str(Path(target) / "debug" / "rostra")


class Agent:
    """One `rostra agent -server -bootstrap-expect 1` child process."""

    def __init__(self, data_dir: str, config: Optional[dict[str, object]] = None) -> None:
        self.data_dir = data_dir
        self.config_file = os.path.join(data_dir, "test-config.json")
        with open(self.config_file, "w") as f:
            json.dump(config or {}, f)
        self.grpc_port = "0"
        self.server_port = "0"
        self.proc: Optional[subprocess.Popen[str]] = None
        self.grpc_addr = ""
        self.start()

    def start(self) -> None:
        args = [
            rostra_bin(), "agent", "-log-json", "-server", "-bootstrap-expect", "1",
            "-node", "py", "-bind", "127.0.0.1", "-client", "127.0.0.1",
            "-data-dir", os.path.join(self.data_dir, "data"),
            "-grpc-port", self.grpc_port, "-server-port", self.server_port,
            "-http-port", "0", "-dns-port", "0", "-config-file", self.config_file,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ready: "queue.Queue[dict[str, str]]" = queue.Queue()

        def read(stream: "subprocess.Popen[str]") -> None:
            assert stream.stderr is not None
            for line in stream.stderr:
                try:
                    v = json.loads(line)
                except ValueError:
                    continue
                if v.get("fields", {}).get("message") == "agent ready":
                    ready.put(v["fields"])

        threading.Thread(target=read, args=(self.proc,), daemon=True).start()
        fields = ready.get(timeout=DEADLINE)
        self.grpc_addr = fields["grpc_addr"]
        self.grpc_port = self.grpc_addr.rsplit(":", 1)[1]
        self.server_port = fields["raft_addr"].rsplit(":", 1)[1]
        self.wait_until_ready()

    def wait_until_ready(self) -> None:
        """Until the node is an alive member (its serfHealth passing): it has a leader
        and can hold sessions and locks."""
        with grpc.insecure_channel(self.grpc_addr) as ch:
            stub = catalog_pb2_grpc.HealthStub(ch)  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + DEADLINE
            while time.monotonic() < deadline:
                try:
                    checks = stub.Node(catalog_pb2.HealthNodeRequest(node="py")).checks
                    if any(c.check_id == "serfHealth" and c.status == catalog_pb2.HEALTH_STATUS_PASSING for c in checks):
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise TimeoutError("the node never became an alive member")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        assert self.proc.wait(timeout=DEADLINE) == 0, "the agent stops cleanly on SIGTERM"

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def agent() -> Iterator[Agent]:
    with tempfile.TemporaryDirectory() as d:
        a = Agent(d, {"limits": {"watch_history_bytes": 8192}})
        try:
            yield a
        finally:
            if a.proc is not None and a.proc.poll() is None:
                a.proc.kill()
                a.proc.wait()


def wait_until(what: str, check: "object") -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


class Proxy:
    """A TCP proxy to ``target`` on an ephemeral loopback port whose connections can be
    cut (as a network failure would), while it keeps accepting new ones."""

    def __init__(self, target: str) -> None:
        import socket

        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.addr = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: "object", dst: "object") -> None:
        import socket

        assert isinstance(src, socket.socket) and isinstance(dst, socket.socket)
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Breaks every open connection."""
        import socket

        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.cut()
        self._listener.close()
