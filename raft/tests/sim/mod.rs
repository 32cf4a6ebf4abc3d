//! A deterministic-as-possible simulation of a three-node Hourglass cluster at the
//! Raft layer; see `sim_cluster.rs` for what it covers and how to replay a seed.

pub mod checks;
pub mod clock;
pub mod cluster;
pub mod director;
pub mod disk;
pub mod faults;
pub mod net;
pub mod plan;
pub mod rng;
pub mod workload;
