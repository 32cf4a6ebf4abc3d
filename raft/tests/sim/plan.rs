//! Everything a seed decides before the run starts.

use std::fmt;

use super::faults::{self, Scheduled};
use super::net::NetConfig;
use super::rng::SimRng;

pub struct Plan {
    pub seed: u64,
    pub shard_count: u32,
    pub clients: u64,
    pub workload_ms: u64,
    pub net: NetConfig,
    pub schedule: Vec<Scheduled>,
}

impl Plan {
    pub fn from_seed(seed: u64) -> Plan {
        let mut rng = SimRng::derive(seed, &[0]);
        let shard_count = rng.between(2, 3) as u32;
        let workload_ms = rng.between(2_500, 4_000);
        let delay_ms_max = rng.between(2, 25);
        let net = NetConfig {
            drop_per_mille: rng.pick(&[0, 10, 30, 80]),
            duplicate_per_mille: rng.pick(&[0, 10, 30]),
            delay_ms_min: 1,
            delay_ms_max,
            report_unreachable_per_mille: 500,
            duplicate_proposals: std::env::var_os("HOURGLASS_SIM_DUPLICATE_PROPOSALS").is_some(),
        };
        let schedule = faults::schedule(&mut rng, shard_count, workload_ms);
        Plan { seed, shard_count, clients: 3, workload_ms, net, schedule }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.net;
        writeln!(
            f,
            "seed {}: {} shards, {} clients, workload {} ms; network drop {}‰ duplicate {}‰ (proposals too: {}) delay {}..={} ms",
            self.seed,
            self.shard_count,
            self.clients,
            self.workload_ms,
            n.drop_per_mille,
            n.duplicate_per_mille,
            n.duplicate_proposals,
            n.delay_ms_min,
            n.delay_ms_max
        )?;
        write!(f, "fault schedule:\n{}", faults::describe(&self.schedule))
    }
}
