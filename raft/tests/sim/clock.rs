//! The simulation's clock. The runtime starts with paused time; a blocking task held
//! for the whole run keeps tokio from auto-advancing it (tokio inhibits auto-advance
//! while a `spawn_blocking` task runs), so time moves only when [`SimClock::step`]
//! says so: one millisecond at a time, and only once the system is quiet — no disk
//! call in flight (the node log's writer is a real thread tokio cannot see) and no
//! activity (sends, deliveries, disk calls, client steps) for a run of yields.
//! Without this, tokio would jump time forward whenever every task waits for the
//! writer thread, and elections would depend on how fast the host's disk thread ran.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use super::disk::Activity;

/// Consecutive quiet yields before time may move.
const QUIET_YIELDS: u32 = 48;
/// Upper bound of yields per settle, so a stuck writer thread cannot hang the run
/// (time then moves on regardless; the run stays correct, only less reproducible).
const SETTLE_YIELDS_MAX: u32 = 200_000;

pub struct SimClock {
    activity: Arc<Activity>,
    start: tokio::time::Instant,
    /// Dropping it ends the blocking task that inhibits auto-advance.
    _inhibitor: mpsc::Sender<()>,
}

impl SimClock {
    /// Must be called inside a runtime started with paused time.
    pub fn start(activity: Arc<Activity>) -> Self {
        let (inhibitor, held) = mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            // Returns when the sender is dropped (the clock is dropped).
            let _ = held.recv();
        });
        Self { activity, start: tokio::time::Instant::now(), _inhibitor: inhibitor }
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Waits until the system is quiet, then moves time one millisecond.
    pub async fn step(&self) {
        self.settle().await;
        tokio::time::advance(Duration::from_millis(1)).await;
    }

    pub async fn settle(&self) {
        let mut quiet = 0;
        let mut yields = 0;
        while quiet < QUIET_YIELDS && yields < SETTLE_YIELDS_MAX {
            let before = self.activity.events();
            tokio::task::yield_now().await;
            let busy = self.activity.disk_busy();
            if busy {
                std::thread::yield_now();
            }
            quiet = if busy || self.activity.events() != before { 0 } else { quiet + 1 };
            yields += 1;
        }
    }
}
