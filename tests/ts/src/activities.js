// Activities of the TypeScript-SDK end-to-end scenarios (run in the worker's Node process).
'use strict';

const { ApplicationFailure, Context } = require('@temporalio/activity');

// Tags passed to `cleanup`, in call order: the cancellation scenario checks its tag is here.
const cleanedUp = [];

async function greet(name) {
  return `Hello, ${name}!`;
}

async function failNonRetryable(message) {
  throw ApplicationFailure.nonRetryable(message, 'MyActivityError', { code: 7 });
}

async function failRetryable(message) {
  const { attempt } = Context.current().info;
  throw ApplicationFailure.retryable(`${message} (attempt ${attempt})`, 'FlakyError');
}

async function cleanup(tag) {
  cleanedUp.push(tag);
  return `cleaned ${tag}`;
}

module.exports = { activities: { greet, failNonRetryable, failRetryable, cleanup }, cleanedUp };
