//! Call deadlines: the `grpc-timeout` request header (gRPC over HTTP/2: up to 8
//! digits and a unit, `H M S m u n`).

use std::time::Duration;

use tonic::metadata::MetadataMap;

/// Longest a workflow task poll waits (Go matching's long-poll expiry).
pub const LONG_POLL_MAX: Duration = Duration::from_secs(60);
/// A long poll answers "nothing" this long before the caller's deadline (Go:
/// `returnEmptyTaskTimeBudget`), so the empty answer arrives in time.
pub const LONG_POLL_TAIL: Duration = Duration::from_secs(1);

/// The caller's timeout, if it sent a valid one.
pub fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    parse_grpc_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)
}

pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// How long a long poll may wait for work: up to [`LONG_POLL_TAIL`] before the
/// caller's deadline, at most [`LONG_POLL_MAX`] (also when no deadline was sent).
pub fn long_poll_wait(metadata: &MetadataMap) -> Duration {
    grpc_timeout(metadata).map_or(LONG_POLL_MAX, |t| t.saturating_sub(LONG_POLL_TAIL)).min(LONG_POLL_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_grpc_timeout("70000000u"), Some(Duration::from_secs(70)));
        assert_eq!(parse_grpc_timeout("30S"), Some(Duration::from_secs(30)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_grpc_timeout("99n"), Some(Duration::from_nanos(99)));
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in ["", "5", "S", "-5S", "5s", "123456789S", "1.5S", "5 S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn long_poll_answers_a_second_early_and_at_most_a_minute() {
        let mut md = MetadataMap::new();
        assert_eq!(long_poll_wait(&md), LONG_POLL_MAX);
        md.insert("grpc-timeout", "5000m".parse().unwrap());
        assert_eq!(long_poll_wait(&md), Duration::from_secs(4));
        md.insert("grpc-timeout", "70000000u".parse().unwrap());
        assert_eq!(long_poll_wait(&md), LONG_POLL_MAX);
        md.insert("grpc-timeout", "500m".parse().unwrap());
        assert_eq!(long_poll_wait(&md), Duration::ZERO);
    }
}
