// Runs the TypeScript-SDK scenarios against a Temporal-API server:
//   node src/main.js HOST:PORT [NAMESPACE] [SCENARIO ...]
// One worker (workflows bundled once) on a task queue of its own serves every scenario;
// each scenario has SCENARIO_TIMEOUT_MS. Prints PASS/FAIL per scenario and a closing
// 'N passed, N failed' line; exits 1 if any failed.
'use strict';

const { randomBytes } = require('node:crypto');
const { Client, Connection } = require('@temporalio/client');
const { Worker, NativeConnection, Runtime, DefaultLogger, bundleWorkflowCode } = require('@temporalio/worker');
const { activities, cleanedUp } = require('./activities');
const { scenarios } = require('./scenarios');
const { events, describeError } = require('./helpers');

const SCENARIO_TIMEOUT_MS = Number(process.env.TS_SCENARIO_TIMEOUT_MS || 60000);

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Why a tracked workflow may be stuck: its last workflow task failure, if any.
async function lastTaskFailure(client, workflowIds) {
  const notes = [];
  for (const workflowId of workflowIds) {
    try {
      const history = await events(client.workflow.getHandle(workflowId));
      const failed = history.filter((e) => e.type === 'workflowTaskFailed').pop();
      if (failed && failed.attrs.failure) {
        notes.push(`${workflowId}: workflow task failed: ${failed.attrs.failure.message}`);
      }
    } catch {
      // the workflow may never have started
    }
  }
  return notes;
}

async function terminateAll(client, workflowIds) {
  for (const workflowId of workflowIds) {
    try {
      await client.workflow.getHandle(workflowId).terminate('ts e2e scenario failed');
    } catch {
      // already closed or never started
    }
  }
}

async function main() {
  const [address, namespaceArg, ...only] = process.argv.slice(2);
  if (!address) {
    console.error('usage: node src/main.js HOST:PORT [NAMESPACE] [SCENARIO ...]');
    process.exit(2);
  }
  const namespace = namespaceArg || 'default';
  const selected = only.length ? scenarios.filter(([name]) => only.includes(name)) : scenarios;
  if (only.length && selected.length !== only.length) {
    console.error(`unknown scenario among ${only.join(' ')}; known: ${scenarios.map(([n]) => n).join(' ')}`);
    process.exit(2);
  }

  // The SDK's own logs (its Rust core's included) only from TS_LOG_LEVEL up: a failing
  // scenario's FAIL line carries its error and the last workflow task failure.
  const logLevel = process.env.TS_LOG_LEVEL || 'ERROR';
  Runtime.install({
    logger: new DefaultLogger(logLevel),
    telemetryOptions: { logging: { filter: { core: logLevel, other: logLevel }, forward: {} } },
  });
  const runTag = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const taskQueue = `ts-e2e-${runTag}`;
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('./workflows'),
    logger: new DefaultLogger('WARN'),
  });
  const workerConnection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection: workerConnection,
    namespace,
    taskQueue,
    workflowBundle,
    activities,
  });
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace });
  const rejectingClient = new Client({
    connection,
    namespace,
    workflow: { queryRejectCondition: 'NOT_OPEN' },
  });
  const workerRun = worker.run();
  let workerError = null;
  workerRun.catch((err) => {
    workerError = err;
  });

  let passed = 0;
  let failed = 0;
  for (const [name, scenario] of selected) {
    const tracked = [];
    const ctx = {
      client,
      rejectingClient,
      taskQueue,
      cleanedUp,
      id: (suffix) => `${suffix}-${runTag}`,
      track: (workflowId) => tracked.push(workflowId),
    };
    const startedAt = Date.now();
    try {
      await withTimeout(scenario(ctx), SCENARIO_TIMEOUT_MS, name);
      passed += 1;
      console.log(`PASS ${name} (${Date.now() - startedAt} ms)`);
    } catch (err) {
      failed += 1;
      const notes = await lastTaskFailure(client, tracked);
      console.log(`FAIL ${name} (${Date.now() - startedAt} ms): ${describeError(err)}`);
      for (const note of notes) {
        console.log(`     ${note}`);
      }
      await terminateAll(client, tracked);
    }
    if (workerError) {
      console.log(`worker stopped: ${describeError(workerError)}`);
      break;
    }
  }
  const notRun = selected.length - passed - failed;
  failed += notRun;

  try {
    worker.shutdown();
  } catch {
    // the worker already stopped
  }
  await withTimeout(workerRun, 30000, 'worker shutdown').catch((err) => {
    console.log(`worker shutdown: ${describeError(err)}`);
  });
  await workerConnection.close();
  await connection.close();
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((err) => {
  console.error(`ts e2e: ${describeError(err)}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
