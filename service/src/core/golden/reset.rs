//! Golden test of a reset: `hist-reset-base.json` is a run recorded on Temporal's
//! server (first workflow task, a signal, a second task, a second signal while no
//! worker ran) that `temporal workflow reset --type FirstWorkflowTask` reset;
//! `hist-reset-new.json` is the run the reset created. The core replays the base
//! (without the termination the reset wrote), resets it to the same point, and must
//! write the same new run and the same termination.

use serde_json::Value;

use super::compare::{compare, Mismatch};
use super::driver::Sim;
use super::reference::{self, RefEvent};
use super::{inputs, load};
use crate::core::reset::{reset, BaseRun, ResetSpec};
use crate::core::Ctx;

/// The core's history of `events`' inputs (the driver's run).
fn replay(events: &[RefEvent]) -> Result<Sim, String> {
    let mut sim = Sim::new();
    for step in inputs::inputs(events, &sim.config)? {
        sim.apply(step)?;
    }
    Ok(sim)
}

fn check(what: &str, mismatches: Vec<Mismatch>) -> Result<(), String> {
    if mismatches.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = mismatches
        .iter()
        .map(|m| format!("  {} {} {}: expected {} got {}", m.position, m.event_type, m.field, m.expected, m.got))
        .collect();
    Err(format!("{what}:\n{}", rows.join("\n")))
}

/// The reset point of the reference's new run: its RESET_WORKFLOW task failure's
/// started event + 1, and the reason it carries.
fn reset_point(new_run: &[RefEvent]) -> Result<(i64, String), String> {
    let failed = new_run.iter().find(|e| e.kind == "EVENT_TYPE_WORKFLOW_TASK_FAILED").ok_or("no WorkflowTaskFailed")?;
    let reason = failed.attrs.pointer("/failure/message").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok((failed.int("startedEventId") + 1, reason))
}

fn golden_reset(base: &Value, new_run: &Value) -> Result<(), String> {
    let base_all = reference::parse(base)?;
    let terminated = base_all.last().filter(|e| e.kind == "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED").ok_or("base not terminated")?;
    let base_events = &base_all[..base_all.len() - 1];
    let mut sim = replay(base_events)?;
    check("the base run", compare(base_events, &sim.events))?;
    let new_ref = reference::parse(new_run)?;
    let (finish_event_id, reason) = reset_point(&new_ref)?;
    let view = sim.view.clone().ok_or("no base run")?;
    let spec = ResetSpec { finish_event_id, reason, reapply_signals: true, reapply_updates: false };
    let now_ms = (terminated.time_ns / 1_000_000) as i64;
    let mut ctx = Ctx { now_ms, config: &sim.config, ids: &mut sim.ids };
    let base = BaseRun { key: &view.key, state: &view.state, events: &sim.events };
    let plan = reset(&base, Some(view.clone()), "new-run".into(), &spec, &mut ctx).map_err(|e| e.to_string())?;
    check("the new run", compare(&new_ref, plan.new_run.events()))?;
    let mut base_after = sim.events.clone();
    base_after.extend(plan.terminated.ok_or("the open base was not terminated")?.events().iter().cloned());
    check("the base run after the reset", compare(&base_all, &base_after))
}

#[test]
fn reset_to_the_first_workflow_task_matches_the_reference() {
    if let Err(report) = golden_reset(&load("hist-reset-base.json"), &load("hist-reset-new.json")) {
        panic!("{report}");
    }
}

#[test]
fn the_reset_golden_test_can_fail() {
    let mut new_run = load("hist-reset-new.json");
    // The reference reapplied both signals; claim the second's input was another.
    new_run["events"][5]["workflowExecutionSignaledEventAttributes"]["signalName"] = Value::String("other".into());
    let report = golden_reset(&load("hist-reset-base.json"), &new_run).unwrap_err();
    assert!(report.contains("the new run") && report.contains("other"), "{report}");
}
