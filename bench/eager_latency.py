#!/usr/bin/env python3
"""Start -> first workflow task latency, with and without eager workflow start.

Usage: bench/eager_latency.py HOST:PORT [COUNT]   (needs `pip install temporalio`)

For each of COUNT workflows, one at a time, on a fresh task queue:
  - normal: a poller is already waiting on the queue; the time from sending
    StartWorkflowExecution to that poll answering with the workflow's task;
  - eager: the time from sending StartWorkflowExecution (request_eager_execution)
    to its answer, which carries the task (a start answered without one is counted
    as a miss and reported).
Each task is then completed (CompleteWorkflowExecution), outside the measured time.
Raw gRPC through the Python SDK's service client: what is measured is the server.
"""

import asyncio
import statistics
import sys
import time
import uuid

from temporalio.api.command.v1 import Command, CompleteWorkflowExecutionCommandAttributes
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import CommandType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client

NS = "default"


def start_request(queue: str, eager: bool) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace=NS,
        workflow_id=f"lat-{uuid.uuid4()}",
        workflow_type=WorkflowType(name="Lat"),
        task_queue=TaskQueue(name=queue),
        identity="bench",
        request_id=str(uuid.uuid4()),
        request_eager_execution=eager,
    )


async def complete(svc, token: bytes) -> None:
    done = Command(
        command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(),
    )
    await svc.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(namespace=NS, task_token=token, commands=[done], identity="bench")
    )


async def poll(svc, queue: str):
    while True:
        task = await svc.poll_workflow_task_queue(
            PollWorkflowTaskQueueRequest(namespace=NS, task_queue=TaskQueue(name=queue), identity="bench")
        )
        if task.task_token:
            return task, time.perf_counter()


async def normal(svc, count: int) -> list:
    queue = f"lat-normal-{uuid.uuid4()}"
    out = []
    for _ in range(count):
        waiting = asyncio.create_task(poll(svc, queue))
        await asyncio.sleep(0.005)  # the poll is at the server before the start
        t0 = time.perf_counter()
        await svc.start_workflow_execution(start_request(queue, False))
        task, t1 = await waiting
        out.append((t1 - t0) * 1000)
        await complete(svc, task.task_token)
    return out


async def eager(svc, count: int) -> tuple:
    queue = f"lat-eager-{uuid.uuid4()}"
    out, misses = [], 0
    for _ in range(count):
        t0 = time.perf_counter()
        answer = await svc.start_workflow_execution(start_request(queue, True))
        t1 = time.perf_counter()
        if not answer.HasField("eager_workflow_task"):
            misses += 1
            task, _ = await poll(svc, queue)
            await complete(svc, task.task_token)
            continue
        out.append((t1 - t0) * 1000)
        await complete(svc, answer.eager_workflow_task.task_token)
    return out, misses


def summary(name: str, ms: list) -> str:
    if not ms:
        return f"{name}: no samples"
    q = statistics.quantiles(ms, n=100)
    return f"{name}: n={len(ms)} p50={q[49]:.2f} ms p95={q[94]:.2f} ms p99={q[98]:.2f} ms mean={statistics.fmean(ms):.2f} ms"


async def main() -> None:
    target = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    client = await Client.connect(target, namespace=NS)
    svc = client.workflow_service
    await normal(svc, 20)  # warm-up (connections, namespace caches)
    await eager(svc, 20)
    n = await normal(svc, count)
    e, misses = await eager(svc, count)
    print(f"target {target}")
    print(summary("start->first task, normal (poller waiting)", n))
    print(summary("start->first task, eager (in the start's answer)", e) + f" misses={misses}")


if __name__ == "__main__":
    asyncio.run(main())
