//! Reading histories: GetWorkflowExecutionHistory (pages, the close-event filter, long
//! polls for new events or the close) and its reverse form, plus the registry of
//! waiters those long polls sleep on.
//!
//! Page tokens are opaque to clients: a magic byte, a version byte and a prost
//! [`PageToken`] naming the run and the next event. Anything else is `InvalidArgument`.

use std::time::Duration;

use hourglass_storage::state::RunKey;
use prost::Message;
use temporalio_protos::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_protos::protos::temporal::api::history::v1::{HistoryEvent, WorkflowExecutionStartedEventAttributes};
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;
use tokio::time::Instant;

use super::errors::{HistoryError, StoredDataError};
use super::{runs, Engine, RunView, ShardOwner};
use crate::error::{Result, ServiceError};

/// Page size when the request sets none, and the largest honoured.
pub const PAGE_EVENTS_MAX: usize = 1000;
/// A page stops growing past this many bytes of events (it always has at least one).
pub const PAGE_BYTES_MAX: usize = 4 << 20;

const TOKEN_MAGIC: u8 = 0x68;
const TOKEN_VERSION: u8 = 1;
const TOKEN_BYTES_MAX: usize = 1024;

/// Where the next page of a history read starts.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PageToken {
    #[prost(string, tag = "1")]
    pub run_id: String,
    /// Forward: first event id of the next page. Reverse: last (highest) one.
    #[prost(int64, tag = "2")]
    pub next_event_id: i64,
    /// Forward only: pages end before this event id (0 = at the history's end).
    /// Workflow tasks bound their history at their WorkflowTaskStarted this way.
    #[prost(int64, tag = "3")]
    pub end_event_id: i64,
    #[prost(bool, tag = "4")]
    pub reverse: bool,
}

impl PageToken {
    pub fn encode_token(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.encoded_len());
        out.push(TOKEN_MAGIC);
        out.push(TOKEN_VERSION);
        self.encode(&mut out).expect("Vec grows as needed");
        out
    }

    pub fn decode_token(bytes: &[u8]) -> Result<Self> {
        let invalid = || ServiceError::from(HistoryError::InvalidPageToken);
        if bytes.len() < 2 || bytes.len() > TOKEN_BYTES_MAX || bytes[0] != TOKEN_MAGIC || bytes[1] != TOKEN_VERSION {
            return Err(invalid());
        }
        let token = Self::decode(&bytes[2..]).map_err(|_| invalid())?;
        if token.run_id.is_empty() || token.next_event_id < 1 || token.end_event_id < 0 {
            return Err(invalid());
        }
        Ok(token)
    }
}

/// Events `from..` of `run` (at most `max`), decoded.
pub fn read_events(owner: &ShardOwner, run: &RunKey, from: i64, max: usize) -> Result<Vec<HistoryEvent>> {
    let from = u64::try_from(from).map_err(|_| StoredDataError::MissingEvent { run: run.clone(), event_id: from })?;
    let raw = owner.read_history(run, from, max)?;
    raw.into_iter()
        .map(|(id, bytes)| {
            HistoryEvent::decode(bytes.as_ref())
                .map_err(|source| StoredDataError::UndecodableEvent { run: run.clone(), event_id: id, source }.into())
        })
        .collect()
}

/// Event `event_id` of `run`.
pub fn read_event(owner: &ShardOwner, run: &RunKey, event_id: i64) -> Result<HistoryEvent> {
    read_events(owner, run, event_id, 1)?
        .pop()
        .filter(|e| e.event_id == event_id)
        .ok_or_else(|| StoredDataError::MissingEvent { run: run.clone(), event_id }.into())
}

/// The attributes of `run`'s WorkflowExecutionStarted (event 1).
pub fn started_attributes(owner: &ShardOwner, run: &RunKey) -> Result<WorkflowExecutionStartedEventAttributes> {
    started_event(owner, run).map(|(attributes, _)| attributes)
}

/// `run`'s WorkflowExecutionStarted (event 1): its attributes and its user metadata.
pub fn started_event(owner: &ShardOwner, run: &RunKey) -> Result<(WorkflowExecutionStartedEventAttributes, Option<UserMetadata>)> {
    let event = read_event(owner, run, 1)?;
    match event.attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => Ok((a, event.user_metadata)),
        _ => Err(StoredDataError::UnexpectedEvent { run: run.clone(), event_id: 1, expected: "WorkflowExecutionStarted" }.into()),
    }
}

/// Id of a closed run's close event.
pub fn close_event_id(run: &RunView) -> i64 {
    if run.state.close_event_id > 0 {
        run.state.close_event_id
    } else {
        run.next_event_id - 1
    }
}

/// A GetWorkflowExecutionHistory request, validated by the frontend.
#[derive(Debug, Clone)]
pub struct HistoryRequest {
    pub workflow_id: String,
    /// Empty: the current run (or the token's).
    pub run_id: String,
    /// 0: the default.
    pub page_size: usize,
    pub next_page_token: Vec<u8>,
    pub wait_new_event: bool,
    /// HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT.
    pub close_event_only: bool,
    /// How long a long poll may block before answering "nothing yet".
    pub wait_budget: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryPage {
    pub events: Vec<HistoryEvent>,
    pub next_page_token: Vec<u8>,
}

fn token_for(run: &RunKey, next_event_id: i64) -> Vec<u8> {
    PageToken { run_id: run.run_id.clone(), next_event_id, ..Default::default() }.encode_token()
}

/// GetWorkflowExecutionHistory.
pub async fn get_history(engine: &Engine, namespace: &str, req: HistoryRequest) -> Result<HistoryPage> {
    let token = if req.next_page_token.is_empty() { None } else { Some(PageToken::decode_token(&req.next_page_token)?) };
    if token.as_ref().is_some_and(|t| t.reverse) {
        return Err(HistoryError::InvalidPageToken.into());
    }
    let run_id = match &token {
        Some(t) if req.run_id.is_empty() => t.run_id.clone(),
        Some(t) if t.run_id != req.run_id => return Err(HistoryError::PageTokenOfAnotherRun.into()),
        _ => req.run_id.clone(),
    };
    let owner = engine.owner_for_read(namespace, &req.workflow_id).await?;
    let mut run = runs::find_run(&owner, namespace, &req.workflow_id, &run_id)?;
    let key = run.key.clone();
    let deadline = Instant::now() + req.wait_budget;

    if req.close_event_only {
        // Temporal blocks on a running workflow here even without wait_new_event.
        if run.state.is_open() {
            run = wait_until(&owner, &key, deadline, |r| !r.state.is_open()).await?;
        }
        if run.state.is_open() {
            let next_page_token = if req.wait_new_event { token_for(&key, run.next_event_id) } else { Vec::new() };
            return Ok(HistoryPage { events: Vec::new(), next_page_token });
        }
        let close = read_event(&owner, &key, close_event_id(&run))?;
        return Ok(HistoryPage { events: vec![close], next_page_token: Vec::new() });
    }

    let from = token.as_ref().map(|t| t.next_event_id).unwrap_or(1);
    let bound = token.as_ref().map(|t| t.end_event_id).unwrap_or(0);
    if from > run.next_event_id || (bound > 0 && from > bound) {
        return Err(HistoryError::InvalidPageToken.into());
    }
    if req.wait_new_event && token.is_some() && bound == 0 && run.state.is_open() && from >= run.next_event_id {
        run = wait_until(&owner, &key, deadline, |r| r.next_event_id > from || !r.state.is_open()).await?;
    }
    let end = if bound > 0 { bound.min(run.next_event_id) } else { run.next_event_id };
    let page_size = if req.page_size == 0 { PAGE_EVENTS_MAX } else { req.page_size.min(PAGE_EVENTS_MAX) };
    let mut events = read_page(&owner, &key, from, end, page_size)?;
    let next = from + events.len() as i64;
    if bound > run.next_event_id && next == run.next_event_id {
        // A speculative workflow task's token: its held events end its history.
        events.extend(run.state.speculative_events.iter().filter(|e| e.event_id < bound).cloned());
    }
    let more = next < end || (bound == 0 && req.wait_new_event && run.state.is_open());
    let next_page_token = if more {
        PageToken { run_id: key.run_id.clone(), next_event_id: next, end_event_id: bound, reverse: false }.encode_token()
    } else {
        Vec::new()
    };
    Ok(HistoryPage { events, next_page_token })
}

/// Events `from..end` of `run`, at most `max` of them and about [`PAGE_BYTES_MAX`] bytes.
fn read_page(owner: &ShardOwner, run: &RunKey, from: i64, end: i64, max: usize) -> Result<Vec<HistoryEvent>> {
    let want = usize::try_from(end - from).unwrap_or(0).min(max);
    if want == 0 {
        return Ok(Vec::new());
    }
    let mut events = read_events(owner, run, from, want)?;
    let mut bytes = 0;
    let keep = events
        .iter()
        .position(|e| {
            bytes += e.encoded_len();
            bytes > PAGE_BYTES_MAX
        })
        .map(|i| i.max(1))
        .unwrap_or(events.len());
    events.truncate(keep);
    Ok(events)
}

/// GetWorkflowExecutionHistoryReverse: pages from the newest event back to event 1.
pub async fn get_history_reverse(
    engine: &Engine,
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
    page_size: usize,
    next_page_token: &[u8],
) -> Result<HistoryPage> {
    let token = if next_page_token.is_empty() { None } else { Some(PageToken::decode_token(next_page_token)?) };
    if token.as_ref().is_some_and(|t| !t.reverse) {
        return Err(HistoryError::InvalidPageToken.into());
    }
    let run_id = match &token {
        Some(t) if run_id.is_empty() => t.run_id.clone(),
        Some(t) if t.run_id != run_id => return Err(HistoryError::PageTokenOfAnotherRun.into()),
        _ => run_id.to_string(),
    };
    let owner = engine.owner_for_read(namespace, workflow_id).await?;
    let run = runs::find_run(&owner, namespace, workflow_id, &run_id)?;
    let last = run.next_event_id - 1;
    let high = token.as_ref().map(|t| t.next_event_id).unwrap_or(last);
    if high > last {
        return Err(HistoryError::InvalidPageToken.into());
    }
    let page_size = if page_size == 0 { PAGE_EVENTS_MAX } else { page_size.min(PAGE_EVENTS_MAX) } as i64;
    let low = (high - page_size + 1).max(1);
    let forward = read_events(&owner, &run.key, low, usize::try_from(high - low + 1).unwrap_or(0))?;
    let mut events = Vec::with_capacity(forward.len());
    let mut bytes = 0;
    for event in forward.into_iter().rev() {
        bytes += event.encoded_len();
        if bytes > PAGE_BYTES_MAX && !events.is_empty() {
            break;
        }
        events.push(event);
    }
    let oldest = events.last().map(|e| e.event_id).unwrap_or(1);
    let next_page_token = if oldest > 1 {
        PageToken { run_id: run.key.run_id.clone(), next_event_id: oldest - 1, end_event_id: 0, reverse: true }.encode_token()
    } else {
        Vec::new()
    };
    Ok(HistoryPage { events, next_page_token })
}

/// Re-reads `run` until `done` holds or `deadline` passes; returns the last read.
/// Commits to the run wake it; so does its owner stopping (the next read then fails
/// with `NotLeader` and the caller re-routes).
async fn wait_until(owner: &ShardOwner, run: &RunKey, deadline: Instant, done: impl Fn(&RunView) -> bool) -> Result<RunView> {
    let notify = owner.watchers().watch(run);
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let loaded = owner.load_existing(run)?;
        let now = Instant::now();
        if done(&loaded) || now >= deadline {
            return Ok(loaded);
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_invalid_argument() {
        let t = PageToken { run_id: "r".into(), next_event_id: 7, end_event_id: 9, reverse: false };
        assert_eq!(PageToken::decode_token(&t.encode_token()).unwrap(), t);
        for bad in [&b"garbage"[..], b"", b"\x68", b"\x68\x02", b"\x68\x01\xff\xff"] {
            assert_eq!(PageToken::decode_token(bad).map_err(|e| e.code()).err(), Some(tonic::Code::InvalidArgument), "{bad:?}");
        }
        let zero = PageToken { run_id: "r".into(), next_event_id: 0, ..Default::default() };
        assert!(PageToken::decode_token(&zero.encode_token()).is_err());
        let no_run = PageToken { next_event_id: 3, ..Default::default() };
        assert!(PageToken::decode_token(&no_run.encode_token()).is_err());
    }
}
