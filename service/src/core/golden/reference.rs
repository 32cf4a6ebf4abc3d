//! The reference histories, read generically: proto3 JSON as Temporal's server wrote
//! it (camelCase keys, int64 as strings, enums by name, durations like `"0.500s"`).
//! Message-valued fields (payloads, failures, retry policies...) convert to prost
//! types with [`super::json`].

use serde_json::Value;
use temporalio_protos::protos::temporal::api::sdk::v1::UserMetadata;

pub use super::json::FromJson;

/// One event of a reference history.
#[derive(Debug, Clone)]
pub struct RefEvent {
    pub id: i64,
    /// `EVENT_TYPE_...`, as `EventType::as_str_name` spells it.
    pub kind: String,
    /// Event time, ns since the epoch (orders the inputs).
    pub time_ns: i128,
    /// The `...EventAttributes` object.
    pub attrs: Value,
    /// The event's `userMetadata` (a summary and details), if any.
    pub user_metadata: Option<UserMetadata>,
}

/// Parses `{"events": [...]}`.
pub fn parse(history: &Value) -> Result<Vec<RefEvent>, String> {
    let events = history.get("events").and_then(Value::as_array).ok_or("no `events` array")?;
    events.iter().map(parse_event).collect()
}

fn parse_event(e: &Value) -> Result<RefEvent, String> {
    let id = int(e.get("eventId")).ok_or_else(|| format!("event without eventId: {e}"))?;
    let kind = e.get("eventType").and_then(Value::as_str).ok_or_else(|| format!("event {id} without eventType"))?.to_string();
    let time = e
        .get("eventTime")
        .and_then(|t| prost_wkt_types::Timestamp::from_json(t).ok())
        .ok_or_else(|| format!("event {id}: bad eventTime"))?;
    let attrs =
        e.as_object().and_then(|o| o.iter().find(|(k, _)| k.ends_with("EventAttributes"))).map(|(_, v)| v.clone()).unwrap_or(Value::Null);
    let user_metadata = e.get("userMetadata").map(UserMetadata::from_json).transpose().map_err(|m| format!("event {id}: {m}"))?;
    Ok(RefEvent { id, kind, time_ns: i128::from(time.seconds) * 1_000_000_000 + i128::from(time.nanos), attrs, user_metadata })
}

/// `a.b.c` in `v`.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

/// An int64 (a string in proto3 JSON) or int32 (a number).
pub fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A proto3-JSON duration (`"10s"`, `"0.500s"`) in whole ms (sub-ms digits dropped:
/// Hourglass's clock counts ms).
pub fn duration_ms(s: &str) -> Option<i64> {
    let d = prost_wkt_types::Duration::from_json(&Value::String(s.to_string())).ok()?;
    Some(d.seconds * 1000 + i64::from(d.nanos) / 1_000_000)
}

impl RefEvent {
    /// Event time in ms (the `now_ms` of the transition that writes it).
    pub fn ms(&self) -> i64 {
        (self.time_ns / 1_000_000) as i64
    }

    pub fn get(&self, path: &str) -> Option<&Value> {
        lookup(&self.attrs, path)
    }

    /// A string field; empty when absent (the proto3 default).
    pub fn str(&self, path: &str) -> String {
        self.get(path).and_then(Value::as_str).unwrap_or_default().to_string()
    }

    /// An integer field; 0 when absent.
    pub fn int(&self, path: &str) -> i64 {
        int(self.get(path)).unwrap_or(0)
    }

    pub fn bool(&self, path: &str) -> bool {
        self.get(path).and_then(Value::as_bool).unwrap_or(false)
    }

    /// A duration field in ms; 0 when absent.
    pub fn ms_of(&self, path: &str) -> i64 {
        self.get(path).and_then(Value::as_str).and_then(duration_ms).unwrap_or(0)
    }

    /// A duration field as the prost type (exact), `None` when absent.
    pub fn duration(&self, path: &str) -> Option<prost_wkt_types::Duration> {
        self.pb(path)
    }

    /// A message field converted by its proto-JSON serde impl (payloads, failures,
    /// retry policies, headers, memos...). Panics on a field that does not convert:
    /// the golden inputs would silently lose it otherwise.
    pub fn pb<T: FromJson>(&self, path: &str) -> Option<T> {
        let v = self.get(path)?;
        match T::from_json(v) {
            Ok(t) => Some(t),
            Err(e) => panic!("event {} {}: `{path}` does not convert: {e}", self.id, self.kind),
        }
    }

    /// An enum field by name (`from_str_name`), as its i32; 0 when absent.
    pub fn enum_of<E: Into<i32>>(&self, path: &str, from_name: fn(&str) -> Option<E>) -> i32 {
        let name = self.str(path);
        if name.is_empty() {
            return 0;
        }
        match from_name(&name) {
            Some(e) => e.into(),
            None => panic!("event {} {}: `{path}` = {name} is not a known enum value", self.id, self.kind),
        }
    }
}
