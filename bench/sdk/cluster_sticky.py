#!/usr/bin/env python3
"""Sticky queues across a cluster: workflows started through one node, a Python SDK
worker connected to another, queries through a third. Every workflow task after the
first must have gone to the worker's sticky queue (wherever the workflow's shard
leader and the sticky queue's home are), and the queries must answer.

Usage: python3 bench/sdk/cluster_sticky.py --client 127.0.0.1:7431 --worker 127.0.0.1:7432 --query 127.0.0.1:7433
"""

import argparse
import asyncio
import json
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
class StickySteps:
    def __init__(self) -> None:
        self.done = 0
        self.release = False

    @workflow.run
    async def run(self, rounds: int) -> int:
        for i in range(rounds):
            await workflow.execute_activity(step, i, start_to_close_timeout=timedelta(seconds=30))
            self.done += 1
        await workflow.wait_condition(lambda: self.release)
        return self.done

    @workflow.query
    def progress(self) -> int:
        return self.done

    @workflow.signal
    def finish(self) -> None:
        self.release = True


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--client", required=True)
    p.add_argument("--worker", required=True)
    p.add_argument("--query", required=True)
    p.add_argument("--workflows", type=int, default=8)
    p.add_argument("--rounds", type=int, default=10)
    a = p.parse_args()
    starter = await Client.connect(a.client)
    worker_client = await Client.connect(a.worker)
    querier = await Client.connect(a.query)
    queue = f"cluster-sticky-{uuid.uuid4()}"
    async with Worker(worker_client, task_queue=queue, workflows=[StickySteps], activities=[step]):
        handles = [await starter.start_workflow(StickySteps.run, a.rounds, id=f"cs-{i}-{uuid.uuid4()}", task_queue=queue)
                   for i in range(a.workflows)]
        for h in handles:
            q = querier.get_workflow_handle(h.id)
            while await q.query(StickySteps.progress) < a.rounds:
                await asyncio.sleep(0.1)
            await q.signal(StickySteps.finish)
        results = [await h.result() for h in handles]
    ok = True
    for h, r in zip(handles, results):
        history = await starter.get_workflow_handle(h.id).fetch_history()
        kinds = [e.workflow_task_scheduled_event_attributes.task_queue.kind for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
        sticky = sum(1 for k in kinds if k == TaskQueueKind.TASK_QUEUE_KIND_STICKY)
        timed_out = sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
        line = {"workflow": h.id, "result": r, "workflow_tasks": len(kinds), "sticky_tasks": sticky, "timed_out": timed_out}
        print(json.dumps(line))
        ok = ok and r == a.rounds and sticky == len(kinds) - 1 and timed_out == 0
    print("OK" if ok else "FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    asyncio.run(main())
