// Workflows of the TypeScript-SDK end-to-end scenarios. The worker bundles this file
// (and what it requires) with webpack into the deterministic workflow sandbox.
'use strict';

const wf = require('@temporalio/workflow');

const { greet, failNonRetryable, failRetryable, cleanup } = wf.proxyActivities({
  startToCloseTimeout: '10s',
  retry: { initialInterval: '100ms', backoffCoefficient: 1, maximumAttempts: 3 },
});

// activity: one activity, its result returned.
async function activityWorkflow(name) {
  return await greet(name);
}

// timer: a 2 s durable timer; returns how long the workflow clock moved across it.
async function timerWorkflow(durationMs) {
  const before = Date.now();
  await wf.sleep(durationMs);
  return Date.now() - before;
}

// signal: collects `addItem` signals until `done` arrives, returns them in order.
const addItem = wf.defineSignal('addItem');
const done = wf.defineSignal('done');
async function signalWorkflow() {
  const items = [];
  let finished = false;
  wf.setHandler(addItem, (item) => {
    items.push(item);
  });
  wf.setHandler(done, () => {
    finished = true;
  });
  await wf.condition(() => finished);
  return items;
}

// query: state readable while running and after completion.
const getState = wf.defineQuery('getState');
const advance = wf.defineSignal('advance');
const finish = wf.defineSignal('finish');
async function queryWorkflow(label) {
  let step = 0;
  let finished = false;
  wf.setHandler(getState, (prefix) => `${prefix}:${label}:${step}`);
  wf.setHandler(advance, (by) => {
    step += by;
  });
  wf.setHandler(finish, () => {
    finished = true;
  });
  await wf.condition(() => finished);
  return step;
}

// update: `setValue` returns the previous value; its validator rejects negative values.
const setValue = wf.defineUpdate('setValue');
const getValue = wf.defineQuery('getValue');
async function updateWorkflow() {
  let value = 0;
  let finished = false;
  wf.setHandler(
    setValue,
    (next) => {
      const previous = value;
      value = next;
      return previous;
    },
    {
      validator: (next) => {
        if (next < 0) {
          throw new Error(`value must not be negative, got ${next}`);
        }
      },
    }
  );
  wf.setHandler(getValue, () => value);
  wf.setHandler(finish, () => {
    finished = true;
  });
  await wf.condition(() => finished);
  return value;
}

// child: a parent that runs a child and combines its result with the child's info.
async function childWorkflow(a, b) {
  const info = wf.workflowInfo();
  return { sum: a + b, parentWorkflowId: info.parent ? info.parent.workflowId : null };
}
async function parentWorkflow(childId) {
  const result = await wf.executeChild(childWorkflow, { workflowId: childId, args: [20, 22] });
  return { child: result, parent: wf.workflowInfo().workflowId };
}

// continue-as-new: counts up to `until` across runs; each run carries the run ids so far.
async function continueAsNewWorkflow(count, until, runIds) {
  const ids = [...runIds, wf.workflowInfo().runId];
  if (count < until) {
    await wf.continueAsNew(count + 1, until, ids);
  }
  return { count, runIds: ids, continuedFromRunId: wf.workflowInfo().continuedFromExecutionRunId || null };
}

// cancellation: waits a day; when cancelled, runs a cleanup activity that cannot be
// cancelled and lets the cancellation end the workflow (status Cancelled).
async function cancellableWorkflow(tag) {
  try {
    await wf.sleep('1 day');
    return 'slept a whole day';
  } catch (err) {
    if (wf.isCancellation(err)) {
      await wf.CancellationScope.nonCancellable(() => cleanup(tag));
    }
    throw err;
  }
}

// parent cancels a started child: the parent's scope is cancelled after the child
// started; the SDK asks the server to cancel the child (RequestCancelExternalWorkflowExecution,
// child only) and the child's result is a ChildWorkflowFailure caused by a CancelledFailure.
async function blockedChildWorkflow() {
  await wf.sleep('1 day');
  return 'child slept a whole day';
}
async function parentCancelsChildWorkflow(childId) {
  const scope = new wf.CancellationScope();
  const child = await scope.run(() => wf.startChild(blockedChildWorkflow, { workflowId: childId }));
  scope.cancel();
  try {
    await child.result();
    return 'child completed';
  } catch (err) {
    if (err instanceof wf.ChildWorkflowFailure) {
      const cause = err.cause;
      return {
        failure: err.name,
        cause: cause ? cause.name : null,
        childWorkflowId: err.execution.workflowId,
        workflowType: err.workflowType,
      };
    }
    throw err;
  }
}

// failures: an activity failure left uncaught, a non-retryable activity failure left
// uncaught, and a workflow that fails with its own ApplicationFailure.
async function activityFailureWorkflow(retryable) {
  if (retryable) {
    return await failRetryable('flaky');
  }
  return await failNonRetryable('boom');
}
async function workflowFailureWorkflow() {
  throw wf.ApplicationFailure.create({
    message: 'workflow broke',
    type: 'MyWorkflowError',
    details: [{ code: 42 }],
    nonRetryable: true,
  });
}

module.exports = {
  activityWorkflow,
  timerWorkflow,
  signalWorkflow,
  queryWorkflow,
  updateWorkflow,
  childWorkflow,
  parentWorkflow,
  continueAsNewWorkflow,
  cancellableWorkflow,
  blockedChildWorkflow,
  parentCancelsChildWorkflow,
  activityFailureWorkflow,
  workflowFailureWorkflow,
};
