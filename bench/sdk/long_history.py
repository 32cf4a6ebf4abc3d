#!/usr/bin/env python3
"""End-to-end wall time of one long workflow run by a real Python SDK worker.

Usage: python3 bench/sdk/long_history.py --target 127.0.0.1:7233 --events 1200 [--events 5000] [--repeat 3]

The workflow runs sequential activities (each adds 6 events: ActivityTaskScheduled/
Started/Completed and a workflow task's Scheduled/Started/Completed) until its
history has about `--events` events; the wall time runs from StartWorkflowExecution
to the result. The worker is the SDK's default: it caches runs and asks for sticky
queues, so on a server with sticky queues each workflow task carries only the new
events, and without them the whole history (O(n^2) replay). Prints one JSON line
per run: target, events asked, events in the history, seconds, WFT count, and how
many WorkflowTaskScheduled events named a sticky queue.
"""

import argparse
import asyncio
import json
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, TaskQueueKind
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn
async def step(i: int) -> int:
    return i + 1


@workflow.defn
class LongHistory:
    @workflow.run
    async def run(self, rounds: int) -> int:
        total = 0
        for i in range(rounds):
            total = await workflow.execute_activity(step, i, start_to_close_timeout=timedelta(seconds=30))
        return total


async def one_run(client: Client, events: int) -> dict:
    rounds = max(1, (events - 5) // 6)
    queue = f"long-history-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[LongHistory], activities=[step]):
        started = time.monotonic()
        handle = await client.start_workflow(LongHistory.run, rounds, id=f"long-{uuid.uuid4()}", task_queue=queue)
        await handle.result()
        seconds = time.monotonic() - started
    history = await handle.fetch_history()
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
    sticky = sum(1 for e in scheduled if e.workflow_task_scheduled_event_attributes.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY)
    return {"events_asked": events, "events": len(history.events), "seconds": round(seconds, 3),
            "workflow_tasks": len(scheduled), "sticky_tasks": sticky}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:7233")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--events", type=int, action="append", help="history length to reach (repeatable)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--label", default="", help="free text copied into every line (which server)")
    args = parser.parse_args()
    client = await Client.connect(args.target, namespace=args.namespace)
    for events in args.events or [1200]:
        for _ in range(args.repeat):
            result = await one_run(client, events)
            print(json.dumps({"label": args.label, "target": args.target, **result}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
