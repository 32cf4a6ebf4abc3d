//! [`NodeLog`]: the handle appenders, readers and the space reclaimer share.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use super::delete;
use super::frame::frame_len;
use super::recover::{recover, Recovered};
use super::shared::Shared;
use super::writer::{AppendResult, Reply, Request, Writer};
use super::{LogConfig, LogPosition, LogStats, Record, RecoveryReport, SegmentInfo};
use crate::disk::{open_disk, Disk};
use crate::error::{Result, StorageError};
use crate::records::RecordKind;

/// The node log. Cheap to clone; the writer thread stops at [`NodeLog::shutdown`]
/// or when the last clone is dropped. Both block the calling thread until the
/// appends already queued are written.
#[derive(Clone)]
pub struct NodeLog {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` once shut down.
    tx: RwLock<Option<SyncSender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn stop(&self) {
        drop(self.tx.write().take());
        if let Some(thread) = self.thread.lock().take() {
            if thread.join().is_err() {
                tracing::error!("node log writer thread panicked");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn writer_gone(shared: &Shared) -> StorageError {
    let reason = shared.failure().unwrap_or_else(|| "the writer thread stopped unexpectedly".into());
    StorageError::LogFailed { reason }
}

impl NodeLog {
    /// Recovers the log in `config.dir` on `disk`, calling `visit` for every valid
    /// record in log order (an error from it aborts the open), then starts the writer.
    pub fn open(
        disk: Arc<dyn Disk>,
        config: LogConfig,
        visit: &mut dyn FnMut(LogPosition, RecordKind, Bytes) -> Result<()>,
    ) -> Result<(NodeLog, RecoveryReport)> {
        config.validate()?;
        let Recovered { segments, hollow, active, next_batch_seq, report } = recover(&*disk, &config, visit)?;
        let (tx, rx) = mpsc::sync_channel(config.queue_depth_max);
        let dir = config.dir.clone();
        let shared = Arc::new(Shared::new(disk, config, segments, hollow));
        let writer = Writer::new(shared.clone(), rx, active, next_batch_seq);
        let thread = std::thread::Builder::new()
            .name("hourglass-log-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StorageError::io("spawn log writer thread", dir, e))?;
        let inner = Inner { shared, tx: RwLock::new(Some(tx)), thread: Mutex::new(Some(thread)) };
        tracing::info!(?report, "node log open");
        Ok((NodeLog { inner: Arc::new(inner) }, report))
    }

    /// [`NodeLog::open`] on the real disk chosen by `config.io_mode`.
    pub fn open_dir(
        config: LogConfig,
        visit: &mut dyn FnMut(LogPosition, RecordKind, Bytes) -> Result<()>,
    ) -> Result<(NodeLog, RecoveryReport)> {
        let disk = open_disk(config.io_mode).map_err(|e| StorageError::io("open disk", &config.dir, e))?;
        Self::open(disk, config, visit)
    }

    /// Appends `records` contiguously; completes once they are durable.
    pub async fn append(&self, records: Vec<Record>) -> Result<Vec<LogPosition>> {
        let Some(frame_bytes) = self.admit(&records)? else { return Ok(Vec::new()) };
        let (tx, rx) = oneshot::channel();
        self.enqueue(Request { records, frame_bytes, reply: Reply::Async(tx) })?;
        rx.await.unwrap_or_else(|_| Err(writer_gone(&self.inner.shared)))
    }

    /// [`NodeLog::append`] for threads outside an async runtime (or inside one,
    /// at the cost of blocking that thread).
    pub fn append_blocking(&self, records: Vec<Record>) -> Result<Vec<LogPosition>> {
        let Some(frame_bytes) = self.admit(&records)? else { return Ok(Vec::new()) };
        let (tx, rx) = mpsc::sync_channel::<AppendResult>(1);
        self.enqueue(Request { records, frame_bytes, reply: Reply::Blocking(tx) })?;
        rx.recv().unwrap_or_else(|_| Err(writer_gone(&self.inner.shared)))
    }

    /// Checks an append before queueing; `None` for an empty one (nothing to do).
    fn admit(&self, records: &[Record]) -> Result<Option<u64>> {
        if self.inner.tx.read().is_none() {
            return Err(StorageError::Closed);
        }
        if let Some(reason) = self.inner.shared.failure() {
            return Err(StorageError::LogFailed { reason });
        }
        let config = &self.inner.shared.config;
        let max = config.record_bytes_max as usize;
        if let Some(r) = records.iter().find(|r| r.payload.len() > max) {
            return Err(StorageError::RecordTooLarge { bytes: r.payload.len(), max });
        }
        let total: u64 = records.iter().map(|r| frame_len(r.payload.len()) as u64).sum();
        if total > config.append_bytes_max() {
            let max = config.append_bytes_max() as usize;
            return Err(StorageError::RecordTooLarge { bytes: total as usize, max });
        }
        Ok((!records.is_empty()).then_some(total))
    }

    fn enqueue(&self, request: Request) -> Result<()> {
        let tx = self.inner.tx.read();
        let tx = tx.as_ref().ok_or(StorageError::Closed)?;
        tx.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => StorageError::Overloaded { queue_depth_max: self.inner.shared.config.queue_depth_max },
            TrySendError::Disconnected(_) => writer_gone(&self.inner.shared),
        })
    }

    /// The record at `pos` (written by a completed append), CRC re-checked; the
    /// payload is a zero-copy slice of the segment.
    pub fn read(&self, pos: LogPosition) -> Result<(RecordKind, Bytes)> {
        self.inner.shared.read(pos)
    }

    /// Drops every segment's pages from this process's memory map. They stay in the
    /// kernel's page cache, and later reads fault back in what they touch. For after
    /// a burst of reads that will not repeat, such as replaying the log at startup.
    /// Advisory and cheap (one `madvise` per segment); never fails.
    pub fn release_mapped_pages(&self) {
        let segments = self.inner.shared.release_pages(false);
        tracing::debug!(segments, "released the mapped pages of the node log");
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.inner.shared.segments()
    }

    /// Deletes a sealed segment (never the active one); its records can no longer
    /// be read. The oldest segment is unlinked; a younger one is replaced by a
    /// header-only "hollow" file so segment ids stay contiguous (see `format.md`).
    pub fn delete_segment(&self, segment_id: u64) -> Result<()> {
        delete::delete_segment(&self.inner.shared, segment_id)
    }

    /// Why the log failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.inner.shared.failure()
    }

    /// Completes queued appends, then stops the writer. Idempotent; later appends
    /// fail with [`StorageError::Closed`].
    pub fn shutdown(&self) {
        self.inner.stop();
    }

    /// "pwrite", "io_uring" or "sim".
    pub fn disk_kind(&self) -> &'static str {
        self.inner.shared.disk.kind()
    }

    pub fn stats(&self) -> LogStats {
        self.inner.shared.stats()
    }

    /// The configuration the log runs with.
    pub fn config(&self) -> &LogConfig {
        &self.inner.shared.config
    }
}
