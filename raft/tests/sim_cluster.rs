//! Seeded simulation of a three-node cluster at the Raft layer.
//!
//! **What runs.** Three [`hourglass_raft::Node`]s (`initial_voters = [1, 2, 3]`,
//! 2–3 shards, 10 ms ticks), each on its own `SimDisk`, joined by a simulated
//! network (`sim/net.rs`) that drops, delays (1..=25 simulated ms) and duplicates
//! messages per link with a seeded generator, and loses whatever crosses a cut link.
//! Three clients (`sim/workload.rs`) create runs, append events with consecutive ids,
//! set state fenced by version (sometimes from a stale version on purpose) and send
//! signals (unfenced enqueues), proposing to whichever node they think leads and
//! following `NotLeader` hints. Meanwhile the seed's fault schedule (`sim/faults.rs`)
//! isolates nodes (often the current leader), cuts links, stalls disks (fsyncs held)
//! and crashes nodes — usually mid-write, sometimes the whole cluster at once — so the
//! disk forgets or tears what was written but not synced, restarts them on what the
//! disk kept, fails one node's fsync (its shards must stop; it is later restarted),
//! and transfers leadership. Then every link heals, the network stops dropping, every
//! node is up, a barrier commits on every shard and the replicas must converge.
//!
//! **Checks** (`sim/checks.rs`), each failure naming the seed: every acknowledged
//! transition (`Applied::Done`) is visible on every replica (runs, events read back
//! through `read_history`, state at or past the acknowledged version, signals); event
//! ids are dense from 1 and every event is the one its bytes name; no signal applied
//! twice (a transition applied twice); no two writes from the same state version both
//! acknowledged; replicas equal per shard (applied index, runs with state, version,
//! history, backlogs — never raw log positions); a node whose fsync failed has a failed
//! log and no running shard; no task panicked.
//!
//! **Running.** `cargo test -p hourglass-raft --test sim_cluster -- --nocapture`
//! runs seeds `1..=HOURGLASS_SIM_SEEDS` (default 12, about half a second each in a
//! debug build; `HOURGLASS_SIM_SEED_BASE` shifts the range); `HOURGLASS_SIM_SEED=123`
//! runs only seed 123. A failing seed prints its
//! plan (network settings, fault schedule), the run's event log and the violations;
//! `HOURGLASS_SIM_VERBOSE=1` prints plan and event log of passing seeds too.
//!
//! **Determinism.** Time is tokio's paused clock, advanced 1 ms at a time by the
//! harness only (auto-advance is held off by a blocking task, `sim/clock.rs`), and
//! only once the system is quiet. Network fates, the fault schedule, the workload's
//! choices and the disks' crash images come from seeded generators (per link, per
//! client, per disk), so they do not depend on the order in which tasks happen to run.
//! What is still not deterministic, so a seed's failure may not replay exactly:
//! - raft-rs draws each randomized election timeout from `rand::thread_rng()` (not
//!   seedable through its API): who campaigns first, hence who leads, differs between
//!   replays. This is the main source of divergence.
//! - The node log's writer is a real OS thread: the harness waits for disk calls in
//!   flight and for a run of quiet yields before moving time, but a writer that has not
//!   picked up a queued append yet is invisible, so an append can complete one
//!   simulated millisecond later on a loaded host.
//! - `incarnation()` comes from the wall clock and pid; it only tags proposals (which
//!   waiter to answer), so it changes nothing observable here.
//! - `HashMap` iteration (random seeds) inside the drivers and raft-rs (e.g. progress
//!   of peers) can order equal choices differently.
//!
//! Measured: replaying one seed three times gave 509, 390 and 412 proposals — runs
//! diverge from the first election on. The fault schedule is fixed by the seed (faults naming "the leader" resolve at run
//! time, and the event log says to whom), so a replay re-runs the same scenario and
//! usually hits the same class of failure; the printed report is what to debug from.

//! **Issues it found, now fixed** (sweeps of seeds 1..=40 pass with the switches):
//! - a follower catching up after a crash received more in one `Ready` than one
//!   `NodeLog::append` may hold (a segment), and its shard's driver stopped for good;
//!   the driver now appends a `Ready` in pieces. The default segment size (16 KiB)
//!   covers it and segment rolls; `HOURGLASS_SIM_SEGMENT_BYTES` changes it.
//! - a duplicated `MsgProp` (a follower forwarding a proposal) was appended and
//!   applied twice; proposals are no longer forwarded (only a leader proposes, and a
//!   `MsgProp` from a peer is dropped). `HOURGLASS_SIM_DUPLICATE_PROPOSALS=1` still
//!   duplicates them on the network.

mod sim;

use sim::director::{run_seed, Tamper};

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}")))
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("HOURGLASS_SIM_SEED") {
        return vec![seed];
    }
    let count = env_u64("HOURGLASS_SIM_SEEDS").unwrap_or(12);
    let base = env_u64("HOURGLASS_SIM_SEED_BASE").unwrap_or(0);
    (base + 1..=base + count).collect()
}

#[test]
fn seeded_cluster_simulations_lose_no_acknowledged_transition() {
    let mut failing = Vec::new();
    for seed in seeds() {
        let report = run_seed(seed, Tamper::None);
        println!("{}", report.summary);
        if std::env::var_os("HOURGLASS_SIM_VERBOSE").is_some() {
            println!("{}", report.details);
        }
        if let Some(failure) = report.failure {
            eprintln!("{failure}");
            failing.push(report.seed);
        }
    }
    assert!(
        failing.is_empty(),
        "failing seeds: {failing:?}; replay one with HOURGLASS_SIM_SEED=<seed> cargo test -p hourglass-raft --test sim_cluster -- --nocapture"
    );
}

/// The checks are not vacuous: an acknowledgement for a transition nobody proposed
/// is reported as lost, with the seed.
#[test]
fn a_forged_acknowledgement_is_reported_as_lost() {
    let report = run_seed(7, Tamper::ForgeAcknowledgement);
    let failure = report.failure.expect("the forged acknowledgement must fail the seed");
    assert!(failure.contains("seed 7: acknowledged transition lost"), "{failure}");
    assert!(failure.contains("fault schedule:"), "{failure}");
}
