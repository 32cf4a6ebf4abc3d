// The scenarios: each starts its workflows through `ctx` and checks results, errors and
// history precisely (node:assert/strict); any thrown error is the scenario's failure.
'use strict';

const assert = require('node:assert/strict');
const {
  WorkflowFailedError,
  WorkflowUpdateFailedError,
  QueryNotRegisteredError,
  QueryRejectedError,
} = require('@temporalio/client');
const { ActivityFailure, ApplicationFailure, CancelledFailure } = require('@temporalio/common');
const { events, eventTypes, waitForEvent, durationSeconds, describeError } = require('./helpers');

// WorkflowExecutionStatus.COMPLETED in the API's enum (QueryRejectedError carries the number).
const STATUS_COMPLETED = 2;
// RetryState.MAXIMUM_ATTEMPTS_REACHED in the API's enum (history attributes carry numbers).
const RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED = 4;

async function start(ctx, workflowType, name, args = []) {
  const handle = await ctx.client.workflow.start(workflowType, {
    taskQueue: ctx.taskQueue,
    workflowId: ctx.id(name),
    args,
  });
  ctx.track(handle.workflowId);
  return handle;
}

// Awaits a promise that must reject; returns the error.
async function rejection(promise, what) {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new assert.AssertionError({ message: `${what} succeeded; a failure was expected` });
}

async function activity(ctx) {
  const handle = await start(ctx, 'activityWorkflow', 'activity', ['Hourglass']);
  assert.equal(await handle.result(), 'Hello, Hourglass!');
  const history = await events(handle);
  assert.deepEqual(eventTypes(history), [
    'workflowExecutionStarted',
    'workflowTaskScheduled',
    'workflowTaskStarted',
    'workflowTaskCompleted',
    'activityTaskScheduled',
    'activityTaskStarted',
    'activityTaskCompleted',
    'workflowTaskScheduled',
    'workflowTaskStarted',
    'workflowTaskCompleted',
    'workflowExecutionCompleted',
  ]);
  const scheduled = history.find((e) => e.type === 'activityTaskScheduled');
  assert.equal(scheduled.attrs.activityType.name, 'greet');
  assert.equal(scheduled.attrs.taskQueue.name, ctx.taskQueue);
  assert.equal(durationSeconds(scheduled.attrs.startToCloseTimeout), 10);
  const started = history.find((e) => e.type === 'activityTaskStarted');
  assert.equal(Number(started.attrs.scheduledEventId), scheduled.id);
  assert.equal(started.attrs.attempt, 1);
  const completed = history.find((e) => e.type === 'activityTaskCompleted');
  assert.equal(Number(completed.attrs.scheduledEventId), scheduled.id);
  assert.equal(Number(completed.attrs.startedEventId), started.id);
  const description = await handle.describe();
  assert.equal(description.status.name, 'COMPLETED');
  assert.equal(description.type, 'activityWorkflow');
  assert.equal(description.taskQueue, ctx.taskQueue);
  assert.equal(description.historyLength, history.length);
}

async function timer(ctx) {
  const wallStart = Date.now();
  const handle = await start(ctx, 'timerWorkflow', 'timer', [2000]);
  const workflowElapsedMs = await handle.result();
  const wallElapsedMs = Date.now() - wallStart;
  assert.ok(workflowElapsedMs >= 2000, `workflow clock moved ${workflowElapsedMs} ms across a 2 s timer`);
  assert.ok(wallElapsedMs >= 2000, `the 2 s timer fired after ${wallElapsedMs} ms`);
  assert.ok(wallElapsedMs < 15000, `the 2 s timer took ${wallElapsedMs} ms`);
  const history = await events(handle);
  assert.deepEqual(eventTypes(history), [
    'workflowExecutionStarted',
    'workflowTaskScheduled',
    'workflowTaskStarted',
    'workflowTaskCompleted',
    'timerStarted',
    'timerFired',
    'workflowTaskScheduled',
    'workflowTaskStarted',
    'workflowTaskCompleted',
    'workflowExecutionCompleted',
  ]);
  const started = history.find((e) => e.type === 'timerStarted');
  const fired = history.find((e) => e.type === 'timerFired');
  assert.equal(durationSeconds(started.attrs.startToFireTimeout), 2);
  assert.equal(fired.attrs.timerId, started.attrs.timerId);
  assert.equal(Number(fired.attrs.startedEventId), started.id);
}

async function signal(ctx) {
  const workflowId = ctx.id('signal');
  ctx.track(workflowId);
  const handle = await ctx.client.workflow.signalWithStart('signalWorkflow', {
    taskQueue: ctx.taskQueue,
    workflowId,
    signal: 'addItem',
    signalArgs: ['first'],
  });
  await handle.signal('addItem', 'second');
  await handle.signal('addItem', 'third');
  await handle.signal('done');
  assert.deepEqual(await handle.result(), ['first', 'second', 'third']);
  const history = await events(handle);
  const signals = history.filter((e) => e.type === 'workflowExecutionSignaled');
  assert.deepEqual(
    signals.map((e) => e.attrs.signalName),
    ['addItem', 'addItem', 'addItem', 'done']
  );
  // signal-with-start writes the signal right after the start event
  assert.deepEqual(eventTypes(history).slice(0, 2), ['workflowExecutionStarted', 'workflowExecutionSignaled']);
  assert.equal(history[history.length - 1].type, 'workflowExecutionCompleted');
}

async function query(ctx) {
  const handle = await start(ctx, 'queryWorkflow', 'query', ['lbl']);
  await waitForEvent(handle, 'workflowTaskCompleted');
  assert.equal(await handle.query('getState', 'q1'), 'q1:lbl:0');
  await handle.signal('advance', 5);
  // a query after an accepted signal sees the signal's effect
  assert.equal(await handle.query('getState', 'q2'), 'q2:lbl:5');
  const unknown = await rejection(handle.query('nope'), 'a query of an unregistered type');
  assert.ok(unknown instanceof QueryNotRegisteredError, `unregistered query gave ${describeError(unknown)}`);
  assert.match(unknown.message, /nope/);
  assert.match(unknown.message, /getState/);
  await handle.signal('finish');
  assert.equal(await handle.result(), 5);
  // a closed workflow can still be queried...
  assert.equal(await handle.query('getState', 'after'), 'after:lbl:5');
  // ...unless the caller rejects queries on workflows that are not open
  const rejectingHandle = ctx.rejectingClient.workflow.getHandle(handle.workflowId);
  const rejected = await rejection(rejectingHandle.query('getState', 'x'), 'a NOT_OPEN query on a closed workflow');
  assert.ok(rejected instanceof QueryRejectedError, `NOT_OPEN query gave ${describeError(rejected)}`);
  assert.equal(rejected.status, STATUS_COMPLETED);
}

async function update(ctx) {
  const handle = await start(ctx, 'updateWorkflow', 'update');
  const rejected = await rejection(
    handle.executeUpdate('setValue', { args: [-1], updateId: 'rejected-update' }),
    'an update its validator rejects'
  );
  assert.ok(rejected instanceof WorkflowUpdateFailedError, `rejected update gave ${describeError(rejected)}`);
  assert.ok(rejected.cause instanceof ApplicationFailure, `rejected update's cause is ${describeError(rejected.cause)}`);
  assert.equal(rejected.cause.message, 'value must not be negative, got -1');
  assert.equal(await handle.executeUpdate('setValue', { args: [7], updateId: 'accepted-update' }), 0);
  assert.equal(await handle.query('getValue'), 7);
  // the same update id again: deduplicated, the first outcome is returned, nothing re-runs
  assert.equal(await handle.executeUpdate('setValue', { args: [9], updateId: 'accepted-update' }), 0);
  assert.equal(await handle.query('getValue'), 7);
  await handle.signal('finish');
  assert.equal(await handle.result(), 7);
  const history = await events(handle);
  const accepted = history.filter((e) => e.type === 'workflowExecutionUpdateAccepted');
  const completed = history.filter((e) => e.type === 'workflowExecutionUpdateCompleted');
  assert.deepEqual(
    accepted.map((e) => e.attrs.acceptedRequest.meta.updateId),
    ['accepted-update']
  );
  assert.equal(accepted[0].attrs.acceptedRequest.input.name, 'setValue');
  assert.deepEqual(
    completed.map((e) => e.attrs.meta.updateId),
    ['accepted-update']
  );
  assert.equal(Number(completed[0].attrs.acceptedEventId), accepted[0].id);
  // a rejected update leaves nothing in history
  assert.ok(!JSON.stringify(history).includes('rejected-update'), 'the rejected update is in history');
}

async function child(ctx) {
  const childId = ctx.id('child-child');
  ctx.track(childId);
  const handle = await start(ctx, 'parentWorkflow', 'child-parent', [childId]);
  assert.deepEqual(await handle.result(), {
    child: { sum: 42, parentWorkflowId: handle.workflowId },
    parent: handle.workflowId,
  });
  const history = await events(handle);
  const kinds = eventTypes(history).filter((t) => t.startsWith('startChild') || t.startsWith('childWorkflow'));
  assert.deepEqual(kinds, [
    'startChildWorkflowExecutionInitiated',
    'childWorkflowExecutionStarted',
    'childWorkflowExecutionCompleted',
  ]);
  const initiated = history.find((e) => e.type === 'startChildWorkflowExecutionInitiated');
  assert.equal(initiated.attrs.workflowId, childId);
  assert.equal(initiated.attrs.workflowType.name, 'childWorkflow');
  const childHandle = ctx.client.workflow.getHandle(childId);
  const description = await childHandle.describe();
  assert.equal(description.status.name, 'COMPLETED');
  assert.equal(description.parentExecution.workflowId, handle.workflowId);
  const childStarted = (await events(childHandle))[0];
  assert.equal(childStarted.attrs.parentWorkflowExecution.workflowId, handle.workflowId);
  assert.equal(Number(childStarted.attrs.parentInitiatedEventId), initiated.id);
}

async function continueAsNew(ctx) {
  const handle = await start(ctx, 'continueAsNewWorkflow', 'continue-as-new', [0, 2, []]);
  const result = await handle.result();
  assert.equal(result.count, 2);
  assert.equal(result.runIds.length, 3);
  assert.equal(new Set(result.runIds).size, 3);
  assert.equal(result.runIds[0], handle.firstExecutionRunId);
  assert.equal(result.continuedFromRunId, result.runIds[1]);
  const firstRun = ctx.client.workflow.getHandle(handle.workflowId, result.runIds[0]);
  assert.equal((await firstRun.describe()).status.name, 'CONTINUED_AS_NEW');
  const firstHistory = await events(firstRun);
  const last = firstHistory[firstHistory.length - 1];
  assert.equal(last.type, 'workflowExecutionContinuedAsNew');
  assert.equal(last.attrs.newExecutionRunId, result.runIds[1]);
  assert.equal(last.attrs.workflowType.name, 'continueAsNewWorkflow');
  const latest = await ctx.client.workflow.getHandle(handle.workflowId).describe();
  assert.equal(latest.runId, result.runIds[2]);
  assert.equal(latest.status.name, 'COMPLETED');
  const secondStarted = (await events(ctx.client.workflow.getHandle(handle.workflowId, result.runIds[1])))[0];
  assert.equal(secondStarted.attrs.continuedExecutionRunId, result.runIds[0]);
  assert.equal(secondStarted.attrs.firstExecutionRunId, result.runIds[0]);
}

async function cancel(ctx) {
  const tag = ctx.id('cleanup');
  const handle = await start(ctx, 'cancellableWorkflow', 'cancel', [tag]);
  await waitForEvent(handle, 'timerStarted');
  await handle.cancel();
  const err = await rejection(handle.result(), 'a cancelled workflow');
  assert.ok(err instanceof WorkflowFailedError, `cancelled workflow gave ${describeError(err)}`);
  assert.ok(err.cause instanceof CancelledFailure, `cancelled workflow's cause is ${describeError(err.cause)}`);
  assert.equal((await handle.describe()).status.name, 'CANCELLED');
  const history = await events(handle);
  const types = eventTypes(history);
  assert.ok(types.includes('workflowExecutionCancelRequested'), `no cancel request in ${types}`);
  assert.ok(types.includes('timerCanceled'), `the timer was not cancelled: ${types}`);
  const cleanup = history.find((e) => e.type === 'activityTaskScheduled');
  assert.equal(cleanup && cleanup.attrs.activityType.name, 'cleanup');
  assert.ok(types.includes('activityTaskCompleted'), `the cleanup activity did not complete: ${types}`);
  assert.equal(types[types.length - 1], 'workflowExecutionCanceled');
  assert.ok(ctx.cleanedUp.includes(tag), 'the cleanup activity did not run');
}

async function cancelChild(ctx) {
  const childId = ctx.id('cancel-child-child');
  ctx.track(childId);
  const handle = await start(ctx, 'parentCancelsChildWorkflow', 'cancel-child-parent', [childId]);
  assert.deepEqual(await handle.result(), {
    failure: 'ChildWorkflowFailure',
    cause: 'CancelledFailure',
    childWorkflowId: childId,
    workflowType: 'blockedChildWorkflow',
  });
  const childHandle = ctx.client.workflow.getHandle(childId);
  assert.equal((await childHandle.describe()).status.name, 'CANCELLED');
  const childTypes = eventTypes(await events(childHandle));
  assert.ok(childTypes.includes('workflowExecutionCancelRequested'), `child history: ${childTypes}`);
  assert.equal(childTypes[childTypes.length - 1], 'workflowExecutionCanceled');
  const history = await events(handle);
  const requested = history.find((e) => e.type === 'requestCancelExternalWorkflowExecutionInitiated');
  assert.ok(requested, `no cancel request in the parent: ${eventTypes(history)}`);
  assert.equal(requested.attrs.workflowExecution.workflowId, childId);
  assert.equal(requested.attrs.childWorkflowOnly, true);
  const types = eventTypes(history);
  assert.ok(types.includes('externalWorkflowExecutionCancelRequested'), `parent history: ${types}`);
  assert.ok(types.includes('childWorkflowExecutionCanceled'), `parent history: ${types}`);
  assert.equal(types[types.length - 1], 'workflowExecutionCompleted');
}

async function activityFailure(ctx) {
  // a non-retryable failure: one attempt, the activity's failure reaches the client intact
  const handle = await start(ctx, 'activityFailureWorkflow', 'activity-failure', [false]);
  const err = await rejection(handle.result(), 'a workflow whose activity failed');
  assert.ok(err instanceof WorkflowFailedError, `gave ${describeError(err)}`);
  const activityErr = err.cause;
  assert.ok(activityErr instanceof ActivityFailure, `cause is ${describeError(activityErr)}`);
  assert.equal(activityErr.activityType, 'failNonRetryable');
  assert.equal(activityErr.retryState, 'NON_RETRYABLE_FAILURE');
  const appErr = activityErr.cause;
  assert.ok(appErr instanceof ApplicationFailure, `the activity failure's cause is ${describeError(appErr)}`);
  assert.equal(appErr.type, 'MyActivityError');
  assert.equal(appErr.message, 'boom');
  assert.equal(appErr.nonRetryable, true);
  assert.deepEqual(appErr.details, [{ code: 7 }]);
  assert.equal((await handle.describe()).status.name, 'FAILED');
  const history = await events(handle);
  assert.equal(history.filter((e) => e.type === 'activityTaskStarted').length, 1);
  assert.equal(history[history.length - 1].type, 'workflowExecutionFailed');

  // a retryable failure: retried by the server up to the policy's 3 attempts
  const retried = await start(ctx, 'activityFailureWorkflow', 'activity-retry', [true]);
  const retryErr = await rejection(retried.result(), 'a workflow whose activity kept failing');
  assert.ok(retryErr instanceof WorkflowFailedError, `gave ${describeError(retryErr)}`);
  assert.ok(retryErr.cause instanceof ActivityFailure, `cause is ${describeError(retryErr.cause)}`);
  assert.equal(retryErr.cause.activityType, 'failRetryable');
  assert.equal(retryErr.cause.retryState, 'MAXIMUM_ATTEMPTS_REACHED');
  assert.ok(retryErr.cause.cause instanceof ApplicationFailure, `cause's cause is ${describeError(retryErr.cause.cause)}`);
  assert.equal(retryErr.cause.cause.type, 'FlakyError');
  assert.equal(retryErr.cause.cause.message, 'flaky (attempt 3)');
  const retriedHistory = await events(retried);
  const started = retriedHistory.filter((e) => e.type === 'activityTaskStarted');
  assert.deepEqual(
    started.map((e) => e.attrs.attempt),
    [3]
  );
  const failed = retriedHistory.find((e) => e.type === 'activityTaskFailed');
  assert.equal(failed.attrs.retryState, RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED);
}

async function workflowFailure(ctx) {
  const handle = await start(ctx, 'workflowFailureWorkflow', 'workflow-failure');
  const err = await rejection(handle.result(), 'a failing workflow');
  assert.ok(err instanceof WorkflowFailedError, `gave ${describeError(err)}`);
  assert.equal(err.retryState, 'RETRY_POLICY_NOT_SET');
  const appErr = err.cause;
  assert.ok(appErr instanceof ApplicationFailure, `cause is ${describeError(appErr)}`);
  assert.equal(appErr.type, 'MyWorkflowError');
  assert.equal(appErr.message, 'workflow broke');
  assert.equal(appErr.nonRetryable, true);
  assert.deepEqual(appErr.details, [{ code: 42 }]);
  assert.equal((await handle.describe()).status.name, 'FAILED');
  const history = await events(handle);
  assert.deepEqual(eventTypes(history), [
    'workflowExecutionStarted',
    'workflowTaskScheduled',
    'workflowTaskStarted',
    'workflowTaskCompleted',
    'workflowExecutionFailed',
  ]);
  const failed = history[history.length - 1];
  assert.equal(failed.attrs.failure.message, 'workflow broke');
  assert.equal(failed.attrs.failure.applicationFailureInfo.type, 'MyWorkflowError');
}

module.exports = {
  scenarios: [
    ['activity', activity],
    ['timer', timer],
    ['signal', signal],
    ['query', query],
    ['update', update],
    ['child', child],
    ['continue-as-new', continueAsNew],
    ['cancel', cancel],
    ['cancel-child', cancelChild],
    ['activity-failure', activityFailure],
    ['workflow-failure', workflowFailure],
  ],
};
