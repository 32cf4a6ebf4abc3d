//! Proto3 JSON → prost, by hand, for the message types the golden inputs carry
//! (payloads, failures, retry policies, headers...). The crate's own proto-JSON
//! impls need `temporalio-protos`'s `serde_serialize` feature, which Hourglass does
//! not build. Unknown keys of a message the inputs rely on fail loudly.

use std::collections::HashMap;

use serde_json::{Map, Value};
use temporalio_protos::protos::temporal::api::common::v1::{
    Header, Memo, Payload, Payloads, Priority, RetryPolicy, SearchAttributes, WorkerVersionStamp, WorkflowExecution,
};
use temporalio_protos::protos::temporal::api::enums::v1::TimeoutType;
use temporalio_protos::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_protos::protos::temporal::api::failure::v1::*;
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;
use temporalio_protos::protos::temporal::api::update::v1::{outcome, Input, Meta, Outcome, Request};

pub type Result<T> = std::result::Result<T, String>;

/// A type read from proto3 JSON.
pub trait FromJson: Sized {
    fn from_json(v: &Value) -> Result<Self>;
}

fn obj(v: &Value) -> Result<&Map<String, Value>> {
    v.as_object().ok_or_else(|| format!("not an object: {v}"))
}

fn text(m: &Map<String, Value>, key: &str) -> String {
    m.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn flag(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn opt<T: FromJson>(m: &Map<String, Value>, key: &str) -> Result<Option<T>> {
    m.get(key).map(T::from_json).transpose()
}

/// Only `known` keys: a key the driver would drop means an input it would lose.
fn only(m: &Map<String, Value>, what: &str, known: &[&str]) -> Result<()> {
    match m.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!("{what}: key `{k}` is not converted by the golden tests")),
        None => Ok(()),
    }
}

/// Standard base64 (with padding), as proto3 JSON writes bytes.
pub fn base64(s: &str) -> Result<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Ok(c - b'A'),
        b'a'..=b'z' => Ok(c - b'a' + 26),
        b'0'..=b'9' => Ok(c - b'0' + 52),
        b'+' | b'-' => Ok(62),
        b'/' | b'_' => Ok(63),
        _ => Err(format!("not base64: {s}")),
    };
    let digits: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(value).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        out.extend(n.to_be_bytes()[1..chunk.len()].iter());
    }
    Ok(out)
}

impl FromJson for Payload {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        only(m, "Payload", &["metadata", "data"])?;
        let mut metadata = HashMap::new();
        if let Some(meta) = m.get("metadata") {
            for (k, v) in obj(meta)? {
                metadata.insert(k.clone(), base64(v.as_str().unwrap_or_default())?);
            }
        }
        Ok(Payload { metadata, data: base64(&text(m, "data"))?, ..Default::default() })
    }
}

impl FromJson for UserMetadata {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        only(m, "UserMetadata", &["summary", "details"])?;
        Ok(UserMetadata { summary: opt(m, "summary")?, details: opt(m, "details")? })
    }
}

impl FromJson for Payloads {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        let list = m.get("payloads").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        Ok(Payloads { payloads: list.iter().map(Payload::from_json).collect::<Result<_>>()? })
    }
}

fn fields(v: &Value, key: &str) -> Result<HashMap<String, Payload>> {
    match obj(v)?.get(key) {
        Some(f) => obj(f)?.iter().map(|(k, v)| Ok((k.clone(), Payload::from_json(v)?))).collect(),
        None => Ok(HashMap::new()),
    }
}

impl FromJson for Header {
    fn from_json(v: &Value) -> Result<Self> {
        Ok(Header { fields: fields(v, "fields")? })
    }
}

impl FromJson for Memo {
    fn from_json(v: &Value) -> Result<Self> {
        Ok(Memo { fields: fields(v, "fields")? })
    }
}

impl FromJson for SearchAttributes {
    fn from_json(v: &Value) -> Result<Self> {
        Ok(SearchAttributes { indexed_fields: fields(v, "indexedFields")? })
    }
}

impl FromJson for prost_wkt_types::Duration {
    fn from_json(v: &Value) -> Result<Self> {
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())
    }
}

impl FromJson for prost_wkt_types::Timestamp {
    fn from_json(v: &Value) -> Result<Self> {
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())
    }
}

impl FromJson for RetryPolicy {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        only(m, "RetryPolicy", &["initialInterval", "backoffCoefficient", "maximumInterval", "maximumAttempts", "nonRetryableErrorTypes"])?;
        let types = m.get("nonRetryableErrorTypes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        Ok(RetryPolicy {
            initial_interval: opt(m, "initialInterval")?,
            backoff_coefficient: m.get("backoffCoefficient").and_then(Value::as_f64).unwrap_or(0.0),
            maximum_interval: opt(m, "maximumInterval")?,
            maximum_attempts: m.get("maximumAttempts").and_then(Value::as_i64).unwrap_or(0) as i32,
            non_retryable_error_types: types.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        })
    }
}

impl FromJson for Priority {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        only(m, "Priority", &["priorityKey", "fairnessKey", "fairnessWeight"])?;
        Ok(Priority {
            priority_key: m.get("priorityKey").and_then(Value::as_i64).unwrap_or(0) as i32,
            fairness_key: text(m, "fairnessKey"),
            fairness_weight: m.get("fairnessWeight").and_then(Value::as_f64).unwrap_or(0.0) as f32,
        })
    }
}

impl FromJson for WorkerVersionStamp {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        Ok(WorkerVersionStamp { build_id: text(m, "buildId"), use_versioning: flag(m, "useVersioning") })
    }
}

impl FromJson for WorkflowExecution {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        Ok(WorkflowExecution { workflow_id: text(m, "workflowId"), run_id: text(m, "runId") })
    }
}

impl FromJson for Failure {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        let own = ["message", "source", "stackTrace", "encodedAttributes", "cause"];
        if let Some(k) = m.keys().find(|k| !own.contains(&k.as_str()) && !k.ends_with("FailureInfo")) {
            return Err(format!("Failure: key `{k}` is not converted by the golden tests"));
        }
        Ok(Failure {
            message: text(m, "message"),
            source: text(m, "source"),
            stack_trace: text(m, "stackTrace"),
            encoded_attributes: opt(m, "encodedAttributes")?,
            cause: opt::<Failure>(m, "cause")?.map(Box::new),
            failure_info: failure_info(m)?,
        })
    }
}

fn failure_info(m: &Map<String, Value>) -> Result<Option<FailureInfo>> {
    let Some((key, v)) = m.iter().find(|(k, _)| k.ends_with("FailureInfo")) else { return Ok(None) };
    let i = obj(v)?;
    Ok(Some(match key.as_str() {
        "applicationFailureInfo" => FailureInfo::ApplicationFailureInfo(ApplicationFailureInfo {
            r#type: text(i, "type"),
            non_retryable: flag(i, "nonRetryable"),
            details: opt(i, "details")?,
            next_retry_delay: opt(i, "nextRetryDelay")?,
            ..Default::default()
        }),
        "timeoutFailureInfo" => FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
            timeout_type: TimeoutType::from_str_name(&text(i, "timeoutType")).map_or(0, |t| t as i32),
            last_heartbeat_details: opt(i, "lastHeartbeatDetails")?,
        }),
        "canceledFailureInfo" => {
            FailureInfo::CanceledFailureInfo(CanceledFailureInfo { details: opt(i, "details")?, identity: text(i, "identity") })
        }
        "terminatedFailureInfo" => FailureInfo::TerminatedFailureInfo(TerminatedFailureInfo { identity: text(i, "identity") }),
        "serverFailureInfo" => FailureInfo::ServerFailureInfo(ServerFailureInfo { non_retryable: flag(i, "nonRetryable") }),
        other => return Err(format!("Failure: `{other}` is not converted by the golden tests")),
    }))
}

impl FromJson for Meta {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        only(m, "update Meta", &["updateId", "identity"])?;
        Ok(Meta { update_id: text(m, "updateId"), identity: text(m, "identity") })
    }
}

impl FromJson for Request {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        only(m, "update Request", &["meta", "input"])?;
        let meta = opt(m, "meta")?;
        let input = match m.get("input") {
            Some(i) => {
                let i = obj(i)?;
                only(i, "update Input", &["name", "args", "header"])?;
                Some(Input { name: text(i, "name"), args: opt(i, "args")?, header: opt(i, "header")? })
            }
            None => None,
        };
        Ok(Request { meta, input, ..Default::default() })
    }
}

impl FromJson for Outcome {
    fn from_json(v: &Value) -> Result<Self> {
        let m = obj(v)?;
        only(m, "update Outcome", &["success", "failure"])?;
        let value = match (opt::<Payloads>(m, "success")?, opt::<Failure>(m, "failure")?) {
            (Some(p), _) => Some(outcome::Value::Success(p)),
            (None, Some(f)) => Some(outcome::Value::Failure(f)),
            (None, None) => None,
        };
        Ok(Outcome { value })
    }
}

/// Payloads as compared and shown: `encoding data` per payload (data as UTF-8).
pub fn payloads_text(p: Option<&Payloads>) -> String {
    let Some(p) = p else { return String::new() };
    let one = |p: &Payload| {
        let encoding = p.metadata.get("encoding").map(|e| String::from_utf8_lossy(e).into_owned()).unwrap_or_default();
        format!("{encoding} {}", String::from_utf8_lossy(&p.data))
    };
    format!("[{}]", p.payloads.iter().map(one).collect::<Vec<_>>().join(", "))
}
