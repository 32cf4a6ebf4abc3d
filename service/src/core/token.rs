//! Task tokens: what a worker hands back to name the task it is answering. Opaque to
//! clients; to us a versioned prost message naming the run, the task and its attempt.
//! A token that does not decode is `InvalidArgument`; one that decodes but names a task
//! that is no longer current is `NotFound` (decided by the handlers against state).

use prost::Message;

use super::error::TokenError;
use super::tasks::TaskKind;

const MAGIC: u8 = 0xA7;
const VERSION: u8 = 1;
/// Far more than any real token; bounds what we try to decode.
const TOKEN_BYTES_MAX: usize = 4096;

#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskToken {
    /// [`super::tasks::TaskKind`].
    #[prost(int32, tag = "1")]
    pub kind: i32,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(string, tag = "3")]
    pub workflow_id: String,
    #[prost(string, tag = "4")]
    pub run_id: String,
    #[prost(int64, tag = "5")]
    pub scheduled_event_id: i64,
    #[prost(int32, tag = "6")]
    pub attempt: i32,
    /// Workflow tasks: the WorkflowTaskStarted event id.
    #[prost(int64, tag = "7")]
    pub started_event_id: i64,
    /// Legacy query tasks: the query id.
    #[prost(string, tag = "8")]
    pub query_id: String,
    /// Activities: the activity id (for the ById forms and checks).
    #[prost(string, tag = "9")]
    pub activity_id: String,
    /// Workflow tasks: when the task started (ms). A discarded speculative task and
    /// the next one share their event ids; this tells them apart.
    #[prost(int64, tag = "10")]
    pub started_time_ms: i64,
}

impl TaskToken {
    pub fn encode_token(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.encoded_len());
        out.push(MAGIC);
        out.push(VERSION);
        self.encode(&mut out).expect("Vec grows as needed");
        out
    }

    pub fn decode_token(bytes: &[u8]) -> Result<Self, TokenError> {
        let bad = TokenError;
        if bytes.is_empty() {
            return Err(bad("empty"));
        }
        if bytes.len() > TOKEN_BYTES_MAX {
            return Err(bad("too long"));
        }
        if bytes.len() < 2 || bytes[0] != MAGIC {
            return Err(bad("not issued by this server"));
        }
        if bytes[1] != VERSION {
            return Err(bad("unknown version"));
        }
        let token = TaskToken::decode(&bytes[2..]).map_err(|_| bad("does not decode"))?;
        if token.namespace.is_empty() || token.workflow_id.is_empty() || token.run_id.is_empty() || token.scheduled_event_id <= 0 {
            return Err(bad("incomplete"));
        }
        // Every token this server issues has all the fields of its kind, so a token cut
        // short at a field boundary (which still decodes) is refused here too.
        let complete = match TaskKind::try_from(token.kind) {
            Ok(TaskKind::WorkflowTask) if token.query_id.is_empty() => {
                token.attempt > 0 && token.started_event_id > 0 && token.started_time_ms > 0
            }
            Ok(TaskKind::WorkflowTask) => token.attempt > 0,
            Ok(TaskKind::ActivityTask) => token.attempt > 0 && !token.activity_id.is_empty(),
            _ => false,
        };
        if !complete {
            return Err(bad("incomplete"));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TaskToken {
        TaskToken {
            kind: 1,
            namespace: "default".into(),
            workflow_id: "wf".into(),
            run_id: "run".into(),
            scheduled_event_id: 2,
            attempt: 1,
            started_event_id: 3,
            started_time_ms: 1_700_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn round_trips() {
        let t = sample();
        assert_eq!(TaskToken::decode_token(&t.encode_token()).unwrap(), t);
    }

    #[test]
    fn garbage_is_invalid_argument() {
        for bad in [&b""[..], b"x", &[MAGIC, 9, 1], &[MAGIC, VERSION, 0xff, 0xff], &[0u8; 5000]] {
            assert!(matches!(TaskToken::decode_token(bad), Err(TokenError(_))), "{bad:?}");
        }
        let mut t = sample().encode_token();
        t.truncate(t.len() - 3);
        assert!(TaskToken::decode_token(&t).is_err());
    }

    #[test]
    fn every_strict_prefix_of_a_token_is_invalid_argument() {
        // Activity and query tokens carry no start time.
        let activity = TaskToken { kind: 2, started_event_id: 0, started_time_ms: 0, activity_id: "act".into(), ..sample() };
        let query = TaskToken { started_event_id: 0, started_time_ms: 0, query_id: "q".into(), ..sample() };
        for t in [sample(), activity, query] {
            let bytes = t.encode_token();
            assert_eq!(TaskToken::decode_token(&bytes).unwrap(), t);
            for n in 0..bytes.len() {
                assert!(matches!(TaskToken::decode_token(&bytes[..n]), Err(TokenError(_))), "{t:?} cut to {n} bytes");
            }
        }
    }
}
