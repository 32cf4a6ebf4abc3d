// Helpers for the scenarios: history as a list of named events, waiting for an event,
// describing an error with its causes.
'use strict';

// Events of a workflow's history as { type, attrs, id }, where `type` is the event's
// attribute field without its suffix (`activityTaskScheduled`, `timerFired`, ...).
async function events(handle) {
  const history = await handle.fetchHistory();
  return (history.events || []).map((event) => {
    const key = Object.keys(event).find((k) => k.endsWith('EventAttributes') && event[k]);
    return {
      type: key ? key.slice(0, -'EventAttributes'.length) : 'unknown',
      attrs: key ? event[key] : {},
      id: Number(event.eventId),
    };
  });
}

function eventTypes(list) {
  return list.map((event) => event.type);
}

function sleepMs(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls the history until an event of `type` appears; returns it.
async function waitForEvent(handle, type, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await events(handle)).find((event) => event.type === type);
    if (found) {
      return found;
    }
    if (Date.now() > deadline) {
      throw new Error(`no ${type} event in ${handle.workflowId}'s history within ${timeoutMs} ms`);
    }
    await sleepMs(100);
  }
}

// `Name: message` for an error and each of its causes, joined by ` <- `.
function describeError(err) {
  if (!err) {
    return String(err);
  }
  const parts = [];
  let current = err;
  for (let depth = 0; current && depth < 6; depth += 1) {
    const name = current.constructor && current.constructor.name ? current.constructor.name : 'Error';
    const code = current.code !== undefined ? ` [code ${current.code}]` : '';
    parts.push(`${name}${code}: ${current.message}`);
    current = current.cause;
  }
  return parts.join(' <- ');
}

// Seconds of a protobuf Duration (seconds may be a Long).
function durationSeconds(duration) {
  if (!duration) {
    return null;
  }
  return Number(duration.seconds || 0) + Number(duration.nanos || 0) / 1e9;
}

module.exports = { events, eventTypes, waitForEvent, describeError, durationSeconds, sleepMs };
