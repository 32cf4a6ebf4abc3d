//! Scenarios and the worker's pure decision: which commands answer a workflow task,
//! computed only from the history the task carries (no sticky cache, no SDK).

use std::fmt;
use std::str::FromStr;

use temporalio_protos::protos::temporal::api::enums::v1::EventType;
use temporalio_protos::protos::temporal::api::history::v1::HistoryEvent;

/// What each workflow does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The first workflow task completes the workflow.
    Noop,
    /// `n` activities, one after the other, then complete (`one-activity` is `n = 1`).
    Activities(u32),
    /// Wait for `k` signals (sent by the starter), then complete.
    Signals(u32),
    /// StartTimer 1 s, then complete when it fires.
    Timer,
    /// StartTimer 1 h and stay open: the workflow counts as done once the timer is
    /// started. For measuring what open workflows cost the server (RSS per workflow).
    Park,
}

impl Scenario {
    /// Signals the starter sends to each workflow.
    pub fn signals_to_send(self) -> u32 {
        match self {
            Scenario::Signals(k) => k,
            _ => 0,
        }
    }
    pub fn uses_activities(self) -> bool {
        matches!(self, Scenario::Activities(_))
    }
    /// Workflow type name (visible in the server's UI/visibility).
    pub fn workflow_type(self) -> String {
        format!("hgbench-{}", self.to_string().replace(' ', "-"))
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Noop => write!(f, "noop"),
            Scenario::Activities(1) => write!(f, "one-activity"),
            Scenario::Activities(n) => write!(f, "activities {n}"),
            Scenario::Signals(k) => write!(f, "signals {k}"),
            Scenario::Timer => write!(f, "timer"),
            Scenario::Park => write!(f, "park"),
        }
    }
}

/// `noop`, `one-activity`, `activities N` / `activities:N`, `signals K` / `signals:K`
/// (K defaults to 3), `timer`, `park`.
impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (name, arg) = match s.split_once([' ', ':', '=']) {
            Some((a, b)) => (a.trim(), Some(b.trim())),
            None => (s, None),
        };
        let num = |default: Option<u32>| -> Result<u32, String> {
            match arg {
                Some(a) => a.parse::<u32>().map_err(|e| format!("bad count {a:?} in scenario {s:?}: {e}")),
                None => default.ok_or_else(|| format!("scenario {name:?} needs a count, e.g. \"{name} 5\"")),
            }
        };
        match name {
            "noop" => Ok(Scenario::Noop),
            "one-activity" => Ok(Scenario::Activities(1)),
            "activities" => Ok(Scenario::Activities(num(None)?.max(1))),
            "signals" => Ok(Scenario::Signals(num(Some(3))?)),
            "timer" => Ok(Scenario::Timer),
            "park" => Ok(Scenario::Park),
            _ => Err(format!("unknown scenario {s:?} (noop, one-activity, activities N, signals K, timer, park)")),
        }
    }
}

/// The worker's answer to one workflow task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// CompleteWorkflowExecution.
    Complete,
    /// ScheduleActivityTask with this sequence number (activity id `a<seq>`).
    ScheduleActivity(u32),
    /// StartTimer with this timer id, firing after this many seconds.
    StartTimer(String, i64),
    /// No commands: still waiting (for a signal, a timer, an activity).
    Wait,
}

/// Counts of the events that matter for a decision.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCounts {
    pub activities_scheduled: u32,
    pub activities_completed: u32,
    /// Failed, timed out or cancelled: rescheduled under a new sequence number.
    pub activities_failed: u32,
    pub timers_started: u32,
    pub timers_fired: u32,
    pub signals: u32,
    pub events: u32,
}

impl HistoryCounts {
    pub fn of(events: &[HistoryEvent]) -> Self {
        let mut c = HistoryCounts::default();
        for e in events {
            c.events += 1;
            match EventType::try_from(e.event_type).unwrap_or(EventType::Unspecified) {
                EventType::ActivityTaskScheduled => c.activities_scheduled += 1,
                EventType::ActivityTaskCompleted => c.activities_completed += 1,
                EventType::ActivityTaskFailed | EventType::ActivityTaskTimedOut | EventType::ActivityTaskCanceled => {
                    c.activities_failed += 1
                }
                EventType::TimerStarted => c.timers_started += 1,
                EventType::TimerFired => c.timers_fired += 1,
                EventType::WorkflowExecutionSignaled => c.signals += 1,
                _ => {}
            }
        }
        c
    }
}

/// How long a `park` workflow's timer runs: longer than any measurement.
pub const PARK_TIMER_SECS: i64 = 3600;

/// Whether accepting `decision` ends the workflow's part in a run: it completed, or
/// (`park`) it started its long timer.
pub fn finishes(scenario: Scenario, decision: &Decision) -> bool {
    match decision {
        Decision::Complete => true,
        Decision::StartTimer(..) => scenario == Scenario::Park,
        _ => false,
    }
}

/// The next command of `scenario` given the history so far.
pub fn decide(scenario: Scenario, events: &[HistoryEvent]) -> Decision {
    let c = HistoryCounts::of(events);
    match scenario {
        Scenario::Noop => Decision::Complete,
        Scenario::Activities(n) => {
            if c.activities_completed >= n {
                Decision::Complete
            } else if c.activities_scheduled <= c.activities_completed + c.activities_failed {
                // Nothing outstanding: schedule the next one.
                Decision::ScheduleActivity(c.activities_scheduled)
            } else {
                Decision::Wait
            }
        }
        Scenario::Signals(k) => {
            if c.signals >= k {
                Decision::Complete
            } else {
                Decision::Wait
            }
        }
        Scenario::Timer => {
            if c.timers_fired >= 1 {
                Decision::Complete
            } else if c.timers_started == 0 {
                Decision::StartTimer("t0".into(), 1)
            } else {
                Decision::Wait
            }
        }
        Scenario::Park if c.timers_started == 0 => Decision::StartTimer("park".into(), PARK_TIMER_SECS),
        Scenario::Park => Decision::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(types: &[EventType]) -> Vec<HistoryEvent> {
        types
            .iter()
            .enumerate()
            .map(|(i, t)| HistoryEvent { event_id: i as i64 + 1, event_type: *t as i32, ..Default::default() })
            .collect()
    }

    const START: [EventType; 3] = [EventType::WorkflowExecutionStarted, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted];
    const WFT_DONE: [EventType; 3] = [EventType::WorkflowTaskCompleted, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted];

    #[test]
    fn parses_scenarios() {
        assert_eq!("noop".parse::<Scenario>(), Ok(Scenario::Noop));
        assert_eq!("one-activity".parse::<Scenario>(), Ok(Scenario::Activities(1)));
        assert_eq!("activities 5".parse::<Scenario>(), Ok(Scenario::Activities(5)));
        assert_eq!("activities:2".parse::<Scenario>(), Ok(Scenario::Activities(2)));
        assert_eq!("signals".parse::<Scenario>(), Ok(Scenario::Signals(3)));
        assert_eq!("signals=4".parse::<Scenario>(), Ok(Scenario::Signals(4)));
        assert_eq!("timer".parse::<Scenario>(), Ok(Scenario::Timer));
        assert_eq!("park".parse::<Scenario>(), Ok(Scenario::Park));
        assert_eq!(Scenario::Park.to_string(), "park");
        assert!("activities".parse::<Scenario>().is_err());
        assert!("nope".parse::<Scenario>().is_err());
        assert_eq!(Scenario::Activities(3).to_string().parse::<Scenario>(), Ok(Scenario::Activities(3)));
    }

    #[test]
    fn park_starts_one_long_timer_and_stays_open() {
        let d = decide(Scenario::Park, &h(&START));
        assert_eq!(d, Decision::StartTimer("park".into(), PARK_TIMER_SECS));
        assert!(finishes(Scenario::Park, &d), "parked counts as done");
        assert!(!finishes(Scenario::Timer, &Decision::StartTimer("t0".into(), 1)), "a timer workflow goes on");
        let mut ev = START.to_vec();
        ev.extend([EventType::WorkflowTaskCompleted, EventType::TimerStarted]);
        ev.extend(WFT_DONE);
        assert_eq!(decide(Scenario::Park, &h(&ev)), Decision::Wait, "never a second timer, never completes");
    }

    #[test]
    fn noop_completes_at_once() {
        assert_eq!(decide(Scenario::Noop, &h(&START)), Decision::Complete);
    }

    #[test]
    fn activities_run_in_sequence() {
        let s = Scenario::Activities(2);
        assert_eq!(decide(s, &h(&START)), Decision::ScheduleActivity(0));
        let mut ev = START.to_vec();
        ev.extend([EventType::WorkflowTaskCompleted, EventType::ActivityTaskScheduled, EventType::ActivityTaskStarted]);
        ev.extend([EventType::ActivityTaskCompleted, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted]);
        assert_eq!(decide(s, &h(&ev)), Decision::ScheduleActivity(1));
        ev.extend([EventType::WorkflowTaskCompleted, EventType::ActivityTaskScheduled]);
        // A WFT while the second activity is outstanding (e.g. after a signal): wait.
        ev.extend([EventType::WorkflowExecutionSignaled, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted]);
        assert_eq!(decide(s, &h(&ev)), Decision::Wait);
        ev.extend([EventType::WorkflowTaskCompleted, EventType::ActivityTaskStarted, EventType::ActivityTaskTimedOut]);
        ev.extend([EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted]);
        assert_eq!(decide(s, &h(&ev)), Decision::ScheduleActivity(2), "a timed-out activity is retried");
        ev.extend([EventType::WorkflowTaskCompleted, EventType::ActivityTaskScheduled, EventType::ActivityTaskStarted]);
        ev.extend([EventType::ActivityTaskCompleted, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted]);
        assert_eq!(decide(s, &h(&ev)), Decision::Complete);
    }

    #[test]
    fn signals_wait_for_k() {
        let s = Scenario::Signals(2);
        let mut ev = START.to_vec();
        assert_eq!(decide(s, &h(&ev)), Decision::Wait);
        ev.extend([EventType::WorkflowTaskCompleted, EventType::WorkflowExecutionSignaled]);
        ev.extend(&WFT_DONE[1..]);
        assert_eq!(decide(s, &h(&ev)), Decision::Wait);
        ev.extend([EventType::WorkflowTaskCompleted, EventType::WorkflowExecutionSignaled]);
        ev.extend(&WFT_DONE[1..]);
        assert_eq!(decide(s, &h(&ev)), Decision::Complete);
    }

    #[test]
    fn timer_starts_once_then_completes() {
        let mut ev = START.to_vec();
        assert_eq!(decide(Scenario::Timer, &h(&ev)), Decision::StartTimer("t0".into(), 1));
        ev.extend([EventType::WorkflowTaskCompleted, EventType::TimerStarted]);
        ev.extend([EventType::WorkflowExecutionSignaled, EventType::WorkflowTaskScheduled, EventType::WorkflowTaskStarted]);
        assert_eq!(decide(Scenario::Timer, &h(&ev)), Decision::Wait);
        ev.extend([EventType::WorkflowTaskCompleted, EventType::TimerFired]);
        ev.extend(&WFT_DONE[1..]);
        assert_eq!(decide(Scenario::Timer, &h(&ev)), Decision::Complete);
    }
}
