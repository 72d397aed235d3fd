"""`mgt worker` arguments → a process that runs attempts for Temporal runs until stopped.

It polls the shared task queue (where runs claim a worker) and a queue of its own
(where a claimed run sends its attempts and fan-out items), runs at most
`--max-concurrent` attempts and items at once, and keeps each run's files under
`--work-dir/<run id>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

from mgt.errors import UsageError

__all__ = ["worker_main"]

HEARTBEAT_THROTTLE_SECONDS = 1.0
STICKY_SECONDS = 3.0


def worker_main(args: argparse.Namespace) -> NoReturn:
    from mgt.engines.temporal.client import require_sdk
    from mgt.engines.temporal.settings import load_settings

    require_sdk()

    if args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent: expected at least 1, got {args.max_concurrent}")
    settings = load_settings(None, address=args.temporal_address, task_queue=args.task_queue)
    work_dir = Path(args.work_dir).resolve()
    from mgt.engines.temporal.client import leave_after

    leave_after(lambda: asyncio.run(_serve(settings.address, settings.namespace,
                                           settings.task_queue, work_dir,
                                           args.max_concurrent)))


async def _serve(address: str, namespace: str, task_queue: str, work_dir: Path,
                 max_concurrent: int) -> int:
    from temporalio.worker import Worker

    from mgt.engines.temporal.activities import Attempts
    from mgt.engines.temporal.client import connect
    from mgt.engines.temporal.workflow import MachineWorkflow

    client = await connect(address, namespace)
    own = f"{task_queue}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    attempts = Attempts(own, work_dir, max_concurrent)
    # the shared queue: claims, and the items of spread fan-outs (any worker may take them);
    # this worker's own queue: the attempts and items of the runs that claimed it
    # heartbeats carry the progress of child runs: sent within a second, not the SDK's
    # default of up to 80% of the heartbeat timeout, so a lost worker loses little of it
    throttle = timedelta(seconds=HEARTBEAT_THROTTLE_SECONDS)
    # a workflow task left on a dead worker's sticky queue moves to another after this
    # long (the SDK's default is 10 s, a pause in every run that loses its worker)
    shared = Worker(client, task_queue=task_queue, workflows=[MachineWorkflow],
                    activities=[attempts.claim, attempts.item],
                    max_concurrent_activities=max_concurrent,
                    max_heartbeat_throttle_interval=throttle,
                    sticky_queue_schedule_to_start_timeout=timedelta(seconds=STICKY_SECONDS))
    mine = Worker(client, task_queue=own, activities=[attempts.attempt, attempts.item],
                  max_concurrent_activities=max_concurrent,
                  max_heartbeat_throttle_interval=throttle)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"mgt worker: polling {task_queue} and {own} at {address} "
          f"(at most {max_concurrent} attempts at once)", file=sys.stderr, flush=True)
    async with shared, mine:
        await stop.wait()
    attempts.pool.shutdown(wait=False, cancel_futures=True)
    return 0
