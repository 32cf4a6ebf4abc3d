//! Our history against the reference: event types in order, then per event the
//! attributes [`super::normalize`] names; a readable side-by-side report.

use std::fmt::Write;

use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;

use super::driver::{short, Sim};
use super::normalize::{expected, fields, got};
use super::reference::RefEvent;

/// One difference.
#[derive(Debug)]
pub struct Mismatch {
    /// 1-based position (the event id both histories should give it).
    pub position: usize,
    pub event_type: String,
    pub field: String,
    pub expected: String,
    pub got: String,
}

pub fn compare(reference: &[RefEvent], ours: &[HistoryEvent]) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for i in 0..reference.len().max(ours.len()) {
        let r = reference.get(i);
        let o = ours.get(i);
        let r_type = r.map_or("-".to_string(), |r| r.kind.trim_start_matches("EVENT_TYPE_").to_string());
        let o_type = o.map_or("-".to_string(), |o| short(o.event_type));
        let mut push = |field: &str, expected: String, got: String| {
            out.push(Mismatch { position: i + 1, event_type: r_type.clone(), field: field.to_string(), expected, got })
        };
        let (Some(r), Some(o)) = (r, o) else {
            push("eventType", r_type.clone(), o_type.clone());
            continue;
        };
        if r_type != o_type {
            push("eventType", r_type.clone(), o_type.clone());
            continue;
        }
        if r.user_metadata != o.user_metadata {
            push("userMetadata", format!("{:?}", r.user_metadata), format!("{:?}", o.user_metadata));
        }
        for (path, val) in fields(o) {
            let (want, have) = (expected(r, path, &val), got(&val));
            if want != have {
                push(path, want, have);
            }
        }
    }
    out
}

fn clip(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        return if s.is_empty() { "(unset)".into() } else { s.to_string() };
    }
    let head: String = s.chars().take(MAX - 1).collect();
    format!("{head}…")
}

/// The failure report: the differences, both histories side by side, what the
/// driver did, and why it stopped early (if it did).
pub fn report(name: &str, scope: &str, reference: &[RefEvent], sim: &Sim, mismatches: &[Mismatch], stopped: Option<&str>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n{name} ({scope}): Hourglass's history differs from Temporal's");
    if let Some(why) = stopped {
        let _ = writeln!(s, "\nthe driver stopped: {why}");
    }
    if !mismatches.is_empty() {
        let _ = writeln!(s, "\n{} difference(s):", mismatches.len());
        let _ = writeln!(s, "  {:>3}  {:<36} {:<32} {:<40} got (Hourglass)", "#", "event (Temporal)", "field", "expected (Temporal)");
        for m in mismatches {
            let _ = writeln!(s, "  {:>3}  {:<36} {:<32} {:<40} {}", m.position, m.event_type, m.field, clip(&m.expected), clip(&m.got));
        }
    }
    let _ = writeln!(s, "\nside by side:");
    let _ = writeln!(s, "  {:>3}  {:<44} Hourglass", "id", "Temporal");
    for i in 0..reference.len().max(sim.events.len()) {
        let r = reference.get(i).map_or("-".to_string(), |r| r.kind.trim_start_matches("EVENT_TYPE_").to_string());
        let o = sim.events.get(i).map_or("-".to_string(), |e| short(e.event_type));
        let flag = if mismatches.iter().any(|m| m.position == i + 1) { "   <-- differs" } else { "" };
        let _ = writeln!(s, "  {:>3}  {r:<44} {o}{flag}", i + 1);
    }
    let _ = writeln!(s, "\ntransitions (the driver's log):");
    for line in &sim.log {
        let _ = writeln!(s, "  {line}");
    }
    s
}
