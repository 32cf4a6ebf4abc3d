//! The group-commit writer: one thread owns the active segment. It takes one
//! queued append, drains whatever else is queued (waiting up to `batch_wait_us`),
//! encodes every frame into one reused buffer, issues one write and one
//! `fdatasync`, and only then completes each append with its positions.
//!
//! A batch never spans segments: when the next append does not fit in the active
//! segment, the batch closes; when even the first does not fit, the writer rolls to
//! a new segment first (the old one needs no seal: every batch in it was synced),
//! then releases the mapped pages of every sealed segment.
//! Any failed write, sync or roll moves the log to the failed state for good; a sync
//! is never retried.

use std::mem;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::frame::encode_frame;
use super::segment::{create_segment, segment_path, SegmentHeader, SEGMENT_HEADER_BYTES};
use super::shared::{SegmentEntry, Shared};
use super::{LogPosition, Record};
use crate::disk::DiskFile;
use crate::error::{Result, StorageError};

pub(super) type AppendResult = Result<Vec<LogPosition>>;

/// Where an append's result goes.
pub(super) enum Reply {
    Async(oneshot::Sender<AppendResult>),
    Blocking(SyncSender<AppendResult>),
}

impl Reply {
    fn send(self, result: AppendResult) {
        // An appender that went away (dropped future) no longer needs the answer.
        let _ = match self {
            Reply::Async(tx) => tx.send(result).map_err(|_| ()),
            Reply::Blocking(tx) => tx.send(result).map_err(|_| ()),
        };
    }
}

pub(super) struct Request {
    pub(super) records: Vec<Record>,
    /// Encoded size of all frames, computed when admitted.
    pub(super) frame_bytes: u64,
    pub(super) reply: Reply,
}

/// The segment appends go to.
pub(super) struct Active {
    pub(super) id: u64,
    pub(super) file: Arc<dyn DiskFile>,
    /// Offset where the next batch goes.
    pub(super) end: u64,
    /// Length of the file: no frame may pass it.
    pub(super) capacity: u64,
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Request>,
    /// A request taken from the queue that did not fit the batch being built.
    held: Option<Request>,
    active: Active,
    next_seq: u32,
    buf: Vec<u8>,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>, rx: Receiver<Request>, active: Active, next_seq: u32) -> Self {
        assert!(active.end <= active.capacity, "active segment data ends past its length");
        Self { shared, rx, held: None, active, next_seq, buf: Vec::new() }
    }

    /// Runs until every sender is gone and the queue is drained.
    pub(super) fn run(mut self) {
        let mut batch = Vec::new();
        // Declared after `batch`, so on a panic it drops first: the failed state is
        // set before the batch's reply channels close.
        let _guard = FailOnPanic(self.shared.clone());
        while let Some(first) = self.held.take().or_else(|| self.rx.recv().ok()) {
            if let Some(reason) = self.shared.failure() {
                first.reply.send(Err(StorageError::LogFailed { reason }));
                continue;
            }
            if !self.fits(first.frame_bytes) {
                if let Err(e) = self.roll() {
                    let reason = self.shared.fail(format!("rolling to a new segment failed: {e}"));
                    first.reply.send(Err(StorageError::LogFailed { reason }));
                    continue;
                }
            }
            assert!(self.fits(first.frame_bytes), "an admitted append always fits an empty segment");
            batch.push(first);
            self.collect(&mut batch);
            self.commit(&mut batch);
            debug_assert!(batch.is_empty(), "every request of a batch is answered");
        }
    }

    fn fits(&self, frame_bytes: u64) -> bool {
        self.active.end + frame_bytes <= self.active.capacity
    }

    /// Adds queued requests to `batch` within the batch limits and the segment.
    fn collect(&mut self, batch: &mut Vec<Request>) {
        let cfg = &self.shared.config;
        let wait = Duration::from_micros(cfg.batch_wait_us);
        let deadline = (!wait.is_zero()).then(|| Instant::now() + wait);
        let mut bytes = batch[0].frame_bytes;
        let mut records = batch[0].records.len();
        while bytes < cfg.batch_bytes_max as u64 && records < cfg.batch_records_max {
            let next = match self.rx.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => match deadline {
                    None => break,
                    Some(d) => match self.rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                        Ok(next) => next,
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    },
                },
            };
            let over_limit = bytes + next.frame_bytes > cfg.batch_bytes_max as u64 || records + next.records.len() > cfg.batch_records_max;
            if over_limit || !self.fits(bytes + next.frame_bytes) {
                self.held = Some(next);
                break;
            }
            bytes += next.frame_bytes;
            records += next.records.len();
            batch.push(next);
        }
    }

    /// Writes and syncs `batch` as one write batch, then answers every request.
    fn commit(&mut self, batch: &mut Vec<Request>) {
        if let Some(reason) = self.shared.failure() {
            return answer_all(batch, || Err(StorageError::LogFailed { reason: reason.clone() }));
        }
        let positions = self.encode(batch);
        let (id, at, len) = (self.active.id, self.active.end, self.buf.len() as u64);
        assert!(at + len <= self.active.capacity, "batch of {len} bytes at {at} overflows segment {id}");
        self.shared.count_sync();
        let result = self.active.file.write_and_sync(at, &[&self.buf]);
        if let Err((op, e)) = result {
            let reason = self.shared.fail(format!("{op} of {len} bytes at offset {at} of segment {id} failed: {e}"));
            return answer_all(batch, || Err(StorageError::LogFailed { reason: reason.clone() }));
        }
        self.active.end += len;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.shared.publish_end(id, self.active.end);
        let records = positions.iter().map(|p| p.len() as u64).sum();
        self.shared.count_batch(records, len);
        for (req, pos) in batch.drain(..).zip(positions) {
            req.reply.send(Ok(pos));
        }
    }

    /// Encodes every record of `batch` into `self.buf`; returns each request's positions.
    fn encode(&mut self, batch: &[Request]) -> Vec<Vec<LogPosition>> {
        self.buf.clear();
        let total: u64 = batch.iter().map(|r| r.frame_bytes).sum();
        self.buf.reserve(total as usize);
        let record_count: usize = batch.iter().map(|r| r.records.len()).sum();
        assert!(record_count > 0, "a write batch holds at least one record");
        let mut written = 0;
        let mut positions = Vec::with_capacity(batch.len());
        for req in batch {
            let mut pos = Vec::with_capacity(req.records.len());
            for rec in &req.records {
                written += 1;
                let offset = self.active.end + self.buf.len() as u64;
                pos.push(LogPosition { segment_id: self.active.id, offset });
                encode_frame(&mut self.buf, self.next_seq, rec.kind, written == record_count, &rec.payload);
            }
            positions.push(pos);
        }
        assert_eq!(self.buf.len() as u64, total, "encoded batch size equals the admitted frame bytes");
        positions
    }

    /// Creates the next segment and makes it active.
    fn roll(&mut self) -> Result<()> {
        let cfg = &self.shared.config;
        let segment_id = self
            .active
            .id
            .checked_add(1)
            .ok_or_else(|| StorageError::Config(format!("segment id {} is the last possible one", self.active.id)))?;
        let header = SegmentHeader { segment_id, first_batch_seq: self.next_seq, prev_segment_end: self.active.end };
        let file = create_segment(&*self.shared.disk, &cfg.dir, header, cfg.segment_bytes)?;
        self.shared.count_sync();
        let path = segment_path(&cfg.dir, header.segment_id);
        let entry = SegmentEntry { header, path, file: file.clone(), bytes_used: SEGMENT_HEADER_BYTES as u64, active: true };
        self.shared.install_active(header.segment_id, entry);
        let old = mem::replace(
            &mut self.active,
            Active { id: header.segment_id, file, end: SEGMENT_HEADER_BYTES as u64, capacity: cfg.segment_bytes },
        );
        // Reads of sealed segments (history, Raft catch-up) leave their pages mapped;
        // drop them now so the mapped log does not grow with the log. The page cache
        // keeps them for the next read.
        let released = self.shared.release_pages(true);
        tracing::debug!(sealed = old.id, bytes = old.end, active = header.segment_id, released, "node log rolled to a new segment");
        Ok(())
    }
}

/// Turns a panic of the writer (a bug) into the failed state, so appenders and
/// `NodeLog::failure` say what happened.
struct FailOnPanic(Arc<Shared>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail("the writer thread panicked (see the panic message in the process log)".into());
        }
    }
}

fn answer_all(batch: &mut Vec<Request>, result: impl Fn() -> AppendResult) {
    for req in batch.drain(..) {
        req.reply.send(result());
    }
}
