//! Golden tests: the pure core replays the inputs of histories recorded from
//! Temporal's own server (`service/tests/reference/hist-*.json`) and must write the
//! same history.
//!
//! For each reference history ([`reference`], [`json`]), [`inputs`] derives what the
//! client, the worker and the timers did from its events: the start request from
//! WorkflowExecutionStarted ([`requests`]), a poll at each WorkflowTaskStarted, the
//! worker's commands from the command events after each WorkflowTaskCompleted
//! ([`commands`]), activity attempts and results, signals, timers firing... — in
//! time order. [`driver`], [`steps`] and [`activities`] play the engine's role in
//! memory: one transition per input at the reference event's time, verified
//! (`RunTxn::verify`) and committed (fenced state, dense event ids, stored timers,
//! backlog tasks). A timer fired for an input must be due by then, and no other
//! timer may have been due (and changed the run) before an input. [`compare`] then
//! checks the produced history against the reference: event types in order, and
//! the attributes [`normalize`] lists.
//!
//! Deliberate differences, handled explicitly:
//! - Sticky queues: the worker's completions name the sticky queue the reference
//!   scheduled the next task on ([`inputs`]), so WorkflowTaskScheduled's task queue
//!   (name, kind, normal name) is compared as Temporal records it.
//! - Updates: an update is admitted (an input) when the speculative workflow task
//!   its Accepted event names as the sequencing event was scheduled; the completion
//!   carries an Acceptance / Response message, with its ProtocolMessage command, per
//!   UpdateAccepted / UpdateCompleted event written after it ([`inputs`]); the driver
//!   keeps the shard owner's registry for the run ([`driver::Sim::updates`]).
//! - Times, identities, request and run ids, history sizes, worker versions and SDK
//!   metadata are not compared; durations are compared at ms precision.
//!
//! What this proves: the inputs come from the same events, so attributes the worker
//! or client chose (names, timeouts, payloads) are largely echoes — the tests check
//! the core keeps and normalises them. Which events exist, their order, their links
//! (scheduled/started/initiated/completed-by ids), attempts, retry states, timeout
//! failures, when workflow tasks are scheduled, and timer deadlines are the core's
//! own. [`every_golden_test_can_fail`] alters each history and expects a report.
//!
//! Coverage — every `hist-*.json` has a test below ([`covered_every_reference_history`]
//! checks the directory against this list):
//!
//! | file | scope |
//! |---|---|
//! | hist-ex-can, ex-cancelact, ex-child, ex-child-child, ex-fail, ex-la, ex-wftfail | full |
//! | hist-ext-{signal,cancel}{,-target,-notfound}, child-{cancel,signal}{,-child}, upsert | full |
//! | hist-nc-noact, nc-signal, strip-st-{cancel,noact,oneact,retry,signal,sws,term,timer} | full |
//! | hist-to-exec, to-hb, to-nonretry, to-s2c | full |
//! | hist-wf-cancel, wf-noact, wf-oneact, wf-retry, wf-signal, wf-sws, wf-term, wf-timer | full |

mod activities;
mod commands;
mod compare;
mod driver;
mod inputs;
mod json;
mod normalize;
mod reference;
mod requests;
mod reset;
mod steps;

use std::path::PathBuf;

use serde_json::Value;

/// How much of a reference history is compared (today: every history whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Full,
}

fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

fn load(file: &str) -> Value {
    let path = reference_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replays `history`'s inputs through the core and compares; `Err` is the report.
pub fn run(name: &str, history: &Value, scope: Scope) -> Result<(), String> {
    let events = reference::parse(history)?;
    let mut sim = driver::Sim::new();
    let mut stopped = None;
    match inputs::inputs(&events, &sim.config) {
        Ok(steps) => {
            for step in steps {
                if let Err(e) = sim.apply(step) {
                    stopped = Some(e);
                    break;
                }
            }
        }
        Err(e) => stopped = Some(e),
    }
    let mismatches = compare::compare(&events, &sim.events);
    if mismatches.is_empty() && stopped.is_none() {
        return Ok(());
    }
    let scope = match scope {
        Scope::Full => "whole history".to_string(),
    };
    Err(compare::report(name, &scope, &events, &sim, &mismatches, stopped.as_deref()))
}

fn golden(file: &str, scope: Scope) {
    if let Err(report) = run(file, &load(file), scope) {
        panic!("{report}");
    }
}

macro_rules! golden_tests {
    ($($test:ident: $file:literal, $scope:ident;)*) => {
        /// Every reference history with a test, and its scope.
        const TESTED: &[(&str, Scope)] = &[$(($file, Scope::$scope)),*];
        $(
            #[test]
            fn $test() {
                golden($file, Scope::$scope);
            }
        )*
    };
}

golden_tests! {
    ex_can: "hist-ex-can.json", Full;
    ex_cancelact: "hist-ex-cancelact.json", Full;
    ex_child: "hist-ex-child.json", Full;
    ex_child_child: "hist-ex-child-child.json", Full;
    ex_fail: "hist-ex-fail.json", Full;
    ex_la: "hist-ex-la.json", Full;
    ex_wftfail: "hist-ex-wftfail.json", Full;
    ext_signal: "hist-ext-signal.json", Full;
    ext_signal_target: "hist-ext-signal-target.json", Full;
    ext_signal_notfound: "hist-ext-signal-notfound.json", Full;
    ext_cancel: "hist-ext-cancel.json", Full;
    ext_cancel_target: "hist-ext-cancel-target.json", Full;
    ext_cancel_notfound: "hist-ext-cancel-notfound.json", Full;
    child_cancel: "hist-child-cancel.json", Full;
    child_cancel_child: "hist-child-cancel-child.json", Full;
    child_signal: "hist-child-signal.json", Full;
    child_signal_child: "hist-child-signal-child.json", Full;
    upsert: "hist-upsert.json", Full;
    nc_noact: "hist-nc-noact.json", Full;
    nc_signal: "hist-nc-signal.json", Full;
    strip_st_cancel: "hist-strip-st-cancel.json", Full;
    strip_st_noact: "hist-strip-st-noact.json", Full;
    strip_st_oneact: "hist-strip-st-oneact.json", Full;
    strip_st_retry: "hist-strip-st-retry.json", Full;
    strip_st_signal: "hist-strip-st-signal.json", Full;
    strip_st_sws: "hist-strip-st-sws.json", Full;
    strip_st_term: "hist-strip-st-term.json", Full;
    strip_st_timer: "hist-strip-st-timer.json", Full;
    to_exec: "hist-to-exec.json", Full;
    to_hb: "hist-to-hb.json", Full;
    to_nonretry: "hist-to-nonretry.json", Full;
    to_s2c: "hist-to-s2c.json", Full;
    wf_cancel: "hist-wf-cancel.json", Full;
    wf_noact: "hist-wf-noact.json", Full;
    wf_oneact: "hist-wf-oneact.json", Full;
    wf_retry: "hist-wf-retry.json", Full;
    wf_signal: "hist-wf-signal.json", Full;
    wf_sws: "hist-wf-sws.json", Full;
    wf_term: "hist-wf-term.json", Full;
    wf_timer: "hist-wf-timer.json", Full;
}

/// Reference histories without a replay test of their own, and why.
const NOT_COVERED: &[(&str, &str)] = &[
    ("hist-reset-base.json", "the base of a reset: replayed by `reset::reset_to_the_first_workflow_task_matches_the_reference`"),
    ("hist-reset-new.json", "the run a reset created: compared by `reset::reset_to_the_first_workflow_task_matches_the_reference`"),
];

#[test]
fn covered_every_reference_history() {
    let mut on_disk: Vec<String> = std::fs::read_dir(reference_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hist-") && n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TESTED.iter().map(|(f, _)| f).chain(NOT_COVERED.iter().map(|(f, _)| f)).map(|f| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every reference history needs a golden test or a NOT_COVERED entry with its reason");
}

/// The tests can fail: a wrong link in the reference is reported, readably.
#[test]
fn a_wrong_link_is_reported() {
    let mut history = load("hist-wf-oneact.json");
    // WorkflowTaskCompleted 10 names its Started event 9; claim 8.
    history["events"][9]["workflowTaskCompletedEventAttributes"]["startedEventId"] = Value::String("8".into());
    let report = run("hist-wf-oneact.json (altered)", &history, Scope::Full).unwrap_err();
    assert!(report.contains("WORKFLOW_TASK_COMPLETED"), "{report}");
    let row = report.lines().find(|l| l.contains("startedEventId")).unwrap_or_else(|| panic!("{report}"));
    assert!(row.contains(" 8 ") && row.trim_end().ends_with('9'), "{row}");
}

/// The update events are compared too: a wrong link from UpdateCompleted to its
/// Accepted event is reported.
#[test]
fn a_wrong_update_link_is_reported() {
    let mut history = load("hist-wf-signal.json");
    // UpdateCompleted 13 names its Accepted event 12; claim 11.
    history["events"][12]["workflowExecutionUpdateCompletedEventAttributes"]["acceptedEventId"] = Value::String("11".into());
    let report = run("hist-wf-signal.json (altered)", &history, Scope::Full).unwrap_err();
    let row = report.lines().find(|l| l.contains("acceptedEventId")).unwrap_or_else(|| panic!("{report}"));
    assert!(row.contains(" 11 ") && row.trim_end().ends_with("12"), "{row}");
}

/// An event the reference has and Hourglass does not write is reported.
#[test]
fn a_missing_event_is_reported() {
    let mut history = load("hist-wf-noact.json");
    let events = history["events"].as_array_mut().unwrap();
    let mut extra = events[1].clone(); // a second WorkflowTaskScheduled, after the close
    extra["eventId"] = Value::String("6".into());
    events.push(extra);
    let report = run("hist-wf-noact.json (altered)", &history, Scope::Full).unwrap_err();
    let row = report.lines().find(|l| l.contains("eventType")).unwrap_or_else(|| panic!("{report}"));
    assert!(row.contains("WORKFLOW_TASK_SCHEDULED") && row.trim_end().ends_with('-'), "{row}");
}

/// A timer Hourglass arms for earlier than Temporal fired it is reported (it would
/// have fired before the next input), and one armed for later too.
#[test]
fn timer_deadlines_are_checked() {
    let started = "/events/4/timerStartedEventAttributes/startToFireTimeout";
    for (fire_after, says) in [("1s", "would have fired before event 6 TIMER_FIRED"), ("2s", "is not due until")] {
        let mut history = load("hist-wf-timer.json");
        *history.pointer_mut(started).unwrap() = Value::String(fire_after.into()); // it fired after 1.5 s
        let report = run("hist-wf-timer.json (altered)", &history, Scope::Full).unwrap_err();
        assert!(report.contains("the driver stopped") && report.contains(says), "{report}");
    }
}

/// User metadata is an input (a start's, a command's) and is compared: a reference
/// with metadata on its Started and TimerStarted events passes, and metadata on an
/// event Hourglass writes without any (TimerFired) is reported.
#[test]
fn user_metadata_is_fed_and_compared() {
    let metadata = serde_json::json!({"summary": {"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "Im5hcCI="}});
    let mut history = load("hist-wf-timer.json");
    history["events"][0]["userMetadata"] = metadata.clone();
    history["events"][4]["userMetadata"] = metadata.clone();
    assert_eq!(history["events"][4]["eventType"], "EVENT_TYPE_TIMER_STARTED");
    run("hist-wf-timer.json (with metadata)", &history, Scope::Full).unwrap_or_else(|report| panic!("{report}"));
    history["events"][5]["userMetadata"] = metadata;
    let report = run("hist-wf-timer.json (metadata on TimerFired)", &history, Scope::Full).unwrap_err();
    let row = report.lines().find(|l| l.contains("userMetadata")).unwrap_or_else(|| panic!("{report}"));
    assert!(row.contains("TIMER_FIRED"), "{row}");
}

/// Every golden test can fail: its first WorkflowTaskCompleted made to name another
/// scheduled event (not an input) is reported.
#[test]
fn every_golden_test_can_fail() {
    for (file, scope) in TESTED {
        let mut history = load(file);
        let events = history["events"].as_array_mut().unwrap();
        let completed = events.iter_mut().find(|e| e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED").unwrap();
        completed["workflowTaskCompletedEventAttributes"]["scheduledEventId"] = Value::String("999".into());
        let report = run(file, &history, *scope).expect_err(file);
        assert!(report.lines().any(|l| l.contains("scheduledEventId") && l.contains("999")), "{file}: {report}");
    }
}
