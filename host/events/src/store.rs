//! The sled-backed store: the events under `e` + big-endian sequence in sled
//! databases of one epoch each ([`super::epochs`]), one atomic batch per append;
//! secondary indexes in memory for the newest events and in a tree of their own
//! for the rest ([`super::index`]).

use super::commit::{Committer, Head};
use super::epochs::Epochs;
use super::event::{Event, EventDraft, GENESIS_HASH, Origin, Provenance};
use super::index::{IndexKey, Indexes};
use super::projection::{EventView, Payload, Projection};
use serde::Deserialize;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Errors from the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store {dir}: {source}")]
    Sled { dir: PathBuf, source: sled::Error },
    /// Another process has the store open.
    #[error(
        "event store {dir}: in use by another leviathan-host process (a `serve` or `tick` on this data directory); stop it first, or read the log through `serve`'s API"
    )]
    InUse { dir: PathBuf },
    #[error("event store {dir}: event {seq} cannot be decoded: {message}")]
    Corrupt {
        dir: PathBuf,
        seq: u64,
        message: String,
    },
    #[error("event {index}: field `{field}`: {message}")]
    Invalid {
        index: usize,
        field: &'static str,
        message: String,
    },
    /// The writer may not write this type (the namespaces the log enforces).
    #[error("event {index}: field `type`: {message}")]
    Forbidden { index: usize, message: String },
    #[error("event store lock poisoned")]
    Poisoned,
    #[error("event store is closed")]
    Closed,
    #[error("event store {dir}: write failed, appends are refused until restart: {message}")]
    Failed { dir: PathBuf, message: String },
}

impl StoreError {
    /// The error for opening the store at `dir` failing with `source`: [`StoreError::InUse`]
    /// when another process holds its lock.
    fn opening(dir: &Path, source: sled::Error) -> StoreError {
        match &source {
            sled::Error::Io(e) if is_lock_held(e) => StoreError::InUse {
                dir: dir.to_path_buf(),
            },
            _ => StoreError::Sled {
                dir: dir.to_path_buf(),
                source,
            },
        }
    }
}

/// True for sled's error when another handle holds the directory's lock.
fn is_lock_held(e: &std::io::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

/// Where and why the hash chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {seq}: {reason}")]
pub struct VerifyError {
    /// The first sequence number that does not verify.
    pub seq: u64,
    pub reason: String,
}

/// The append-only event log.
pub struct EventLog {
    shared: Arc<Shared>,
    committer: Committer,
}

/// What the log's readers and its committing thread share.
pub(super) struct Shared {
    pub dir: PathBuf,
    pub epochs: Epochs,
    /// Highest durable (acknowledged) sequence; reads never go past it.
    pub last_seq: AtomicU64,
    pub indexes: RwLock<Indexes>,
    /// The thread storing index entries in the background, if one was started.
    pub index_writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub projection: RwLock<Projection>,
    /// The sequence number of the last checkpoint written.
    pub checkpoint_seq: AtomicU64,
    /// When the last checkpoint was written or the log opened (ms since the epoch).
    pub checkpoint_ms: AtomicU64,
    /// Publishes the highest durable sequence to subscribers (SSE, `tail --follow`).
    pub durable_seq: tokio::sync::watch::Sender<u64>,
}

/// The fields replay reads, borrowed from the stored bytes where possible; the
/// payload stays raw unless the projection needs it.
#[derive(Deserialize)]
struct Stored<'a> {
    seq: u64,
    ts_ms: u64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    target: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    task: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    attempt: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    payload: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    origin: Option<Origin>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

impl Stored<'_> {
    fn refs(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        (
            self.target.as_deref(),
            self.task.as_deref(),
            self.attempt.as_deref(),
        )
    }
}

const NULL_PAYLOAD: &serde_json::Value = &serde_json::Value::Null;

/// The projection's view of a full event.
pub(super) fn view_of(event: &Event) -> EventView<'_> {
    EventView {
        seq: event.seq,
        ts_ms: event.ts_ms,
        kind: &event.kind,
        target: event.target.as_deref(),
        task: event.task.as_deref(),
        attempt: event.attempt.as_deref(),
        payload: Payload::Value(&event.payload),
        origin: event.origin,
    }
}

pub(super) fn event_key(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'e');
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(super) fn seq_of_key(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    if key.len() >= 8 {
        bytes.copy_from_slice(&key[key.len() - 8..]);
    }
    u64::from_be_bytes(bytes)
}

fn validate(index: usize, draft: &EventDraft) -> Result<(), StoreError> {
    let invalid = |field, message: &str| StoreError::Invalid {
        index,
        field,
        message: message.into(),
    };
    if draft.kind.is_empty() || draft.kind.len() > 128 {
        return Err(invalid("type", "must be 1 to 128 characters"));
    }
    if !draft
        .kind
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(invalid("type", "may only hold a-z, 0-9, `.`, `_` and `-`"));
    }
    for (field, value) in [
        ("target", &draft.target),
        ("task", &draft.task),
        ("attempt", &draft.attempt),
    ] {
        if let Some(v) = value
            && (v.is_empty() || v.len() > 256 || v.contains('\0'))
        {
            return Err(invalid(field, "must be 1 to 256 characters without NUL"));
        }
    }
    Ok(())
}

/// How long opening a store waits for a lock a just-closed handle of this process
/// still holds (sled's flusher thread lets go of it shortly after the handle drops).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);

/// sled's page cache. Its default (1 GiB) fills during a replay and stays
/// resident; the log is read mostly once (replay, the background indexing) and
/// then by page, so a small cache costs little and keeps the host's memory
/// independent of the history's length (docs/PERFORMANCE.md).
pub const CACHE_BYTES: u64 = 64 << 20;

/// Opens sled at `dir`, retrying briefly while the directory's lock is held.
pub(super) fn open_db(dir: &Path) -> sled::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
        {
            Err(sled::Error::Io(e)) if is_lock_held(&e) && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn decode(dir: &Path, seq: u64, bytes: &[u8]) -> Result<Event, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        dir: dir.to_path_buf(),
        seq,
        message: e.to_string(),
    })
}

/// How much one read may return: at most `count` events and, past the first,
/// at most `bytes` of stored JSON (so a page of large events stays bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub count: usize,
    pub bytes: usize,
}

/// The events of one page, and whether more lay beyond its bounds.
#[derive(Debug, Clone, Default)]
pub struct Paged {
    pub events: Vec<Event>,
    pub more: bool,
}

impl Page {
    /// At most `count` events, whatever their size.
    pub fn count(count: usize) -> Page {
        Page {
            count,
            bytes: usize::MAX,
        }
    }
}

/// Decodes stored `(seq, bytes)` rows into a page: at most `page.count` events and,
/// past the first, at most `page.bytes` of stored JSON; `more` when rows were left.
fn collect_page(
    dir: &Path,
    page: Page,
    rows: impl Iterator<Item = Result<(u64, sled::IVec), StoreError>>,
) -> Result<Paged, StoreError> {
    let mut events = Vec::new();
    let mut used = 0usize;
    for row in rows {
        let (seq, value) = row?;
        let full = events.len() >= page.count
            || (!events.is_empty() && used.saturating_add(value.len()) > page.bytes);
        if full {
            return Ok(Paged { events, more: true });
        }
        used += value.len();
        events.push(decode(dir, seq, &value)?);
    }
    Ok(Paged {
        events,
        more: false,
    })
}

fn read_after(
    dir: &Path,
    epochs: &Epochs,
    after: u64,
    last: u64,
    page: Page,
) -> Result<Paged, StoreError> {
    let rows = epochs.rows(after.saturating_add(1), last).map(|item| {
        item.map_err(|source| StoreError::Sled {
            dir: dir.to_path_buf(),
            source,
        })
    });
    collect_page(dir, page, rows)
}

/// Reads a store without replaying it (no indexes, no projection): for short-lived
/// readers such as `events tail --follow`, which reopen the store on every poll so
/// that writers can take it in between.
pub struct EventReader {
    dir: PathBuf,
    epochs: Epochs,
}

impl EventReader {
    /// Opens the store in `dir`; fails while another process holds it.
    pub fn open(dir: &Path) -> Result<EventReader, StoreError> {
        let sled_err = |source| StoreError::Sled {
            dir: dir.to_path_buf(),
            source,
        };
        let db = open_db(dir).map_err(|e| StoreError::opening(dir, e))?;
        let epochs = Epochs::open(dir, db, super::epochs::EPOCH_EVENTS).map_err(sled_err)?;
        Ok(EventReader {
            dir: dir.to_path_buf(),
            epochs,
        })
    }

    /// The sequence of the newest event (0 when empty).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        self.epochs.newest_seq().map_err(|source| StoreError::Sled {
            dir: self.dir.clone(),
            source,
        })
    }

    /// Up to `limit` events with a sequence above `after`, in order.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        Ok(read_after(
            &self.dir,
            &self.epochs,
            after,
            u64::MAX - 1,
            Page::count(limit),
        )?
        .events)
    }
}

/// The fewest events a flush or close stores as a run of the indexes: fewer are
/// indexed again from the log by the next open (a few milliseconds), so a host
/// opened and closed often does not pile up small runs that every lookup visits.
const MIN_RUN_EVENTS: u64 = super::index::RUN_EVENTS / 10;

impl Shared {
    /// Stores the indexes' entries held in memory when they cover at least
    /// [`MIN_RUN_EVENTS`] events (after any background store has finished), then
    /// writes a checkpoint of the projection as it stands.
    pub(super) fn checkpoint(&self) -> Result<(), StoreError> {
        let writer = self
            .index_writer
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .take();
        if let Some(thread) = writer {
            let _ = thread.join();
        }
        self.indexes
            .write()
            .map_err(|_| StoreError::Poisoned)?
            .store(MIN_RUN_EVENTS)
            .map_err(|source| StoreError::Sled {
                dir: self.dir.clone(),
                source,
            })?;
        self.checkpoint_projection()
    }

    /// Starts storing the indexes' entries held in memory on a background thread
    /// (unless one is still at it: they then wait for the next checkpoint), and
    /// writes a checkpoint of the projection meanwhile. For the commit thread,
    /// which must not wait for the index's write.
    pub(super) fn checkpoint_in_background(self: &Arc<Self>) -> Result<(), StoreError> {
        {
            let mut writer = self.index_writer.lock().map_err(|_| StoreError::Poisoned)?;
            if writer.as_ref().is_none_or(|t| t.is_finished()) {
                if let Some(done) = writer.take() {
                    let _ = done.join();
                }
                let mut indexes = self.indexes.write().map_err(|_| StoreError::Poisoned)?;
                let frozen = if indexes.pending_events() >= super::index::RUN_EVENTS {
                    indexes.next_to_store()
                } else {
                    None
                };
                drop(indexes);
                if let Some(frozen) = frozen {
                    let shared = self.clone();
                    let thread = std::thread::Builder::new()
                        .name("event-index".into())
                        .spawn(move || shared.store_frozen(&frozen));
                    match thread {
                        Ok(t) => *writer = Some(t),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot start the index writer; the entries wait in memory")
                        }
                    }
                }
            }
        }
        self.checkpoint_projection()
    }

    /// Writes `frozen` to the index tree and moves the mark (on the index writer).
    fn store_frozen(&self, frozen: &super::index::Frozen) {
        let tree = match self.indexes.read() {
            Ok(ix) => ix.tree().clone(),
            Err(_) => return,
        };
        match frozen.write(&tree) {
            Ok(()) => {
                if let Ok(mut ix) = self.indexes.write() {
                    ix.stored(frozen.through());
                }
            }
            // The entries stay readable in memory; the next checkpoint tries again.
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "event index entries not stored")
            }
        }
    }

    /// Writes a checkpoint of the projection as it stands.
    fn checkpoint_projection(&self) -> Result<(), StoreError> {
        let projection = self.projection.read().map_err(|_| StoreError::Poisoned)?;
        let seq = projection.last_seq;
        if seq == 0 || seq == self.checkpoint_seq.load(Ordering::SeqCst) {
            return Ok(());
        }
        let hash = super::checkpoint::stored_hash(&self.epochs, seq).ok_or_else(|| {
            StoreError::Failed {
                dir: self.dir.clone(),
                message: format!("checkpoint: event {seq} unreadable"),
            }
        })?;
        super::checkpoint::save(self.epochs.root_db(), &projection, &hash).map_err(|message| {
            StoreError::Failed {
                dir: self.dir.clone(),
                message: format!("checkpoint: {message}"),
            }
        })?;
        self.checkpoint_seq.store(seq, Ordering::SeqCst);
        self.checkpoint_ms
            .store(leviathan_domain::clock::now_ms(), Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        // The next open replays nothing after a clean close.
        if let Err(e) = self.shared.checkpoint() {
            tracing::warn!(error = %e, "projection checkpoint not written at close");
        }
    }
}

impl EventLog {
    /// Writes a checkpoint of the projection now (it is also written every
    /// [`super::checkpoint::EVERY`] events, at `flush` and when the log is closed).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.shared.checkpoint()
    }

    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path) -> Result<EventLog, StoreError> {
        Self::open_with_epochs(dir, super::epochs::EPOCH_EVENTS)
    }

    /// [`EventLog::open`] with epochs of `per_epoch` events (tests use small ones).
    pub(crate) fn open_with_epochs(dir: &Path, per_epoch: u64) -> Result<EventLog, StoreError> {
        let sled_err = |source| StoreError::Sled {
            dir: dir.to_path_buf(),
            source,
        };
        let db = open_db(dir).map_err(|e| StoreError::opening(dir, e))?;
        let epochs = Epochs::open(dir, db, per_epoch).map_err(sled_err)?;
        let db = epochs.root_db();
        // A checkpoint still on the chain: replay only what came after it.
        let checkpoint = super::checkpoint::load(db, &epochs);
        let (from, mut head, mut projection) = match checkpoint {
            Some((seq, hash, projection)) => (
                seq,
                Head {
                    next_seq: seq + 1,
                    last_hash: hash,
                },
                projection,
            ),
            None => (
                0,
                Head {
                    next_seq: 1,
                    last_hash: GENESIS_HASH.into(),
                },
                Projection::default(),
            ),
        };
        let mut indexes = Indexes::open(db).map_err(sled_err)?;
        let newest = epochs.newest_seq().map_err(sled_err)?;
        if indexes.stored_through() > newest {
            tracing::warn!(
                indexed = indexes.stored_through(),
                newest,
                "event indexes reach past the log: rebuilding them"
            );
            indexes.reset().map_err(sled_err)?;
        }
        // The events after the checkpoint go into the projection; those after the
        // stored indexes into the indexes (both are usually the same few).
        let scan_from = from.min(indexes.stored_through());
        for item in epochs.rows(scan_from + 1, u64::MAX) {
            let (seq, value) = item.map_err(sled_err)?;
            let stored: Stored =
                serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt {
                    dir: dir.to_path_buf(),
                    seq,
                    message: e.to_string(),
                })?;
            let (target, task, attempt) = stored.refs();
            indexes.add(seq, target, task, attempt);
            indexes.store(super::index::RUN_EVENTS).map_err(sled_err)?;
            if seq <= from {
                continue;
            }
            projection.apply(&EventView {
                seq,
                ts_ms: stored.ts_ms,
                kind: &stored.kind,
                target,
                task,
                attempt,
                payload: match stored.payload {
                    Some(raw) => Payload::Raw(raw),
                    None => Payload::Value(NULL_PAYLOAD),
                },
                origin: stored.origin,
            });
            head = Head {
                next_seq: stored.seq + 1,
                last_hash: stored.hash.into_owned(),
            };
        }
        // What the scan indexed, unless too little for a run of its own.
        indexes.store(MIN_RUN_EVENTS).map_err(sled_err)?;
        let last = head.next_seq - 1;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            epochs,
            last_seq: AtomicU64::new(last),
            indexes: RwLock::new(indexes),
            index_writer: Mutex::new(None),
            projection: RwLock::new(projection),
            checkpoint_seq: AtomicU64::new(from),
            checkpoint_ms: AtomicU64::new(leviathan_domain::clock::now_ms()),
            durable_seq: tokio::sync::watch::Sender::new(last),
        });
        let committer = Committer::start(shared.clone(), head).map_err(|e| StoreError::Failed {
            dir: dir.to_path_buf(),
            message: format!("cannot start the commit thread: {e}"),
        })?;
        Ok(EventLog { shared, committer })
    }

    fn sled_err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled {
            dir: self.shared.dir.clone(),
            source,
        }
    }

    /// Appends the host's own `drafts` atomically and returns them sealed, once they
    /// are durable. Either every draft is stored or none is. Concurrent appends share
    /// one write and one fsync (group commit).
    pub fn append(&self, drafts: Vec<EventDraft>) -> Result<Vec<Event>, StoreError> {
        self.append_as(Provenance::host(), drafts)
    }

    /// Appends `drafts` written by `by`: each type must be one `by` may write (see
    /// [`super::catalog::check_writer`]: clients only their namespace, operators their
    /// actions), or nothing is stored.
    pub fn append_as(
        &self,
        by: Provenance,
        drafts: Vec<EventDraft>,
    ) -> Result<Vec<Event>, StoreError> {
        for (i, d) in drafts.iter().enumerate() {
            validate(i, d)?;
            super::catalog::check_writer(by.origin, &d.kind)
                .map_err(|message| StoreError::Forbidden { index: i, message })?;
        }
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        self.committer.submit(drafts, by)
    }

    /// Writes a checkpoint and flushes sled (used on shutdown; acknowledged appends
    /// are durable already).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.checkpoint()?;
        self.shared.epochs.flush().map_err(|e| self.sled_err(e))
    }

    /// A receiver of the highest durable sequence, updated after every group commit.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.durable_seq.subscribe()
    }

    /// Runs `read` on the projection of the whole log.
    pub fn with_projection<R>(&self, read: impl FnOnce(&Projection) -> R) -> Result<R, StoreError> {
        let projection = self
            .shared
            .projection
            .read()
            .map_err(|_| StoreError::Poisoned)?;
        Ok(read(&projection))
    }

    /// Notes a scheduler pass's end in the projection (see
    /// [`Projection::note_pass`]); nothing is written to the log.
    pub fn note_pass<'a>(
        &self,
        ms: u64,
        targets: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let mut projection = self
            .shared
            .projection
            .write()
            .map_err(|_| StoreError::Poisoned)?;
        projection.note_pass(ms, targets);
        Ok(())
    }

    /// A copy of the projection.
    pub fn projection(&self) -> Result<Projection, StoreError> {
        self.with_projection(Projection::clone)
    }

    /// The sequence number of the last event (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::SeqCst)
    }

    fn indexes(&self) -> Result<std::sync::RwLockReadGuard<'_, Indexes>, StoreError> {
        self.shared.indexes.read().map_err(|_| StoreError::Poisoned)
    }

    fn decode(&self, seq: u64, bytes: &[u8]) -> Result<Event, StoreError> {
        decode(&self.shared.dir, seq, bytes)
    }

    /// Event `seq`, if stored.
    pub fn get(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        match self.shared.epochs.get(seq).map_err(|e| self.sled_err(e))? {
            Some(bytes) => Ok(Some(self.decode(seq, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Up to `limit` acknowledged events with a sequence above `after`, in order.
    pub fn after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        Ok(self.after_page(after, Page::count(limit))?.events)
    }

    /// Acknowledged events with a sequence above `after`, in order, within `page`.
    pub fn after_page(&self, after: u64, page: Page) -> Result<Paged, StoreError> {
        read_after(
            &self.shared.dir,
            &self.shared.epochs,
            after,
            self.last_seq(),
            page,
        )
    }

    /// The stored events `seqs` (one more than `page.count` tells whether more lie
    /// beyond), within `page`.
    fn read_seqs(&self, seqs: Vec<u64>, page: Page) -> Result<Paged, StoreError> {
        let epochs = &self.shared.epochs;
        let rows = seqs.into_iter().filter_map(|seq| {
            epochs
                .get(seq)
                .map_err(|e| self.sled_err(e))
                .map(|value| value.map(|v| (seq, v)))
                .transpose()
        });
        collect_page(&self.shared.dir, page, rows)
    }

    fn by_index(&self, key: IndexKey, after: u64, page: Page) -> Result<Paged, StoreError> {
        let seqs = self
            .indexes()?
            .after(&key, after, self.last_seq(), page.count.saturating_add(1))
            .map_err(|e| self.sled_err(e))?;
        self.read_seqs(seqs, page)
    }

    /// Events of one target after `after`, within `page`.
    pub fn by_target_page(
        &self,
        target: &str,
        after: u64,
        page: Page,
    ) -> Result<Paged, StoreError> {
        self.by_index(IndexKey::Target(target.into()), after, page)
    }

    /// Events of one task of a target after `after`, within `page`.
    pub fn by_task_page(
        &self,
        target: &str,
        task: &str,
        after: u64,
        page: Page,
    ) -> Result<Paged, StoreError> {
        self.by_index(IndexKey::Task(target.into(), task.into()), after, page)
    }

    /// The newest events of one task of a target, oldest first, within `page`
    /// (counted from the newest, so the page ends at the latest event).
    pub fn latest_by_task(
        &self,
        target: &str,
        task: &str,
        page: Page,
    ) -> Result<Vec<Event>, StoreError> {
        let seqs = self
            .indexes()?
            .before(
                &IndexKey::Task(target.into(), task.into()),
                u64::MAX,
                self.last_seq(),
                page.count,
            )
            .map_err(|e| self.sled_err(e))?;
        let mut events = self.read_seqs(seqs, page)?.events;
        events.reverse();
        Ok(events)
    }

    /// The newest events below `before` (of `target`, when given), newest first,
    /// within `page`; `more` when older ones remain.
    pub fn newest_page(
        &self,
        target: Option<&str>,
        before: u64,
        page: Page,
    ) -> Result<Paged, StoreError> {
        let before = before.min(self.last_seq().saturating_add(1));
        let seqs: Vec<u64> = match target {
            Some(t) => self
                .indexes()?
                .before(
                    &IndexKey::Target(t.into()),
                    before,
                    self.last_seq(),
                    page.count.saturating_add(1),
                )
                .map_err(|e| self.sled_err(e))?,
            None => (1..before)
                .rev()
                .take(page.count.saturating_add(1))
                .collect(),
        };
        self.read_seqs(seqs, page)
    }

    /// Events of one target, after `after`.
    pub fn by_target(
        &self,
        target: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .by_target_page(target, after, Page::count(limit))?
            .events)
    }

    /// Events of one task of a target, after `after`.
    pub fn by_task(
        &self,
        target: &str,
        task: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .by_task_page(target, task, after, Page::count(limit))?
            .events)
    }

    /// Events of one attempt, after `after`.
    pub fn by_attempt(
        &self,
        attempt: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .by_index(IndexKey::Attempt(attempt.into()), after, Page::count(limit))?
            .events)
    }

    /// Walks the whole chain: sequences contiguous from 1, each `prev_hash` equal to
    /// the previous event's hash, each hash matching its content. Returns the number
    /// of events, or the first sequence that does not verify.
    pub fn verify(&self) -> Result<u64, VerifyError> {
        self.verify_each(|_| {})
    }

    /// [`EventLog::verify`], handing each verified event to `each` on the way (one
    /// pass over the log, e.g. to collect the import records it holds).
    pub fn verify_each(&self, mut each: impl FnMut(&Event)) -> Result<u64, VerifyError> {
        let mut expected = 1u64;
        let mut prev = GENESIS_HASH.to_string();
        for item in self.shared.epochs.rows(1, u64::MAX) {
            let (seq, value) = item.map_err(|e| VerifyError {
                seq: expected,
                reason: format!("unreadable: {e}"),
            })?;
            if seq != expected {
                return Err(VerifyError {
                    seq: expected,
                    reason: format!("missing (the next stored event is {seq})"),
                });
            }
            let event: Event = serde_json::from_slice(&value).map_err(|e| VerifyError {
                seq,
                reason: format!("cannot be decoded: {e}"),
            })?;
            if event.seq != seq {
                return Err(VerifyError {
                    seq,
                    reason: format!("stored under {seq} but says seq {}", event.seq),
                });
            }
            if event.prev_hash != prev {
                return Err(VerifyError {
                    seq,
                    reason: "prev_hash does not match the previous event's hash".into(),
                });
            }
            if event.compute_hash() != event.hash {
                return Err(VerifyError {
                    seq,
                    reason: "content does not match its hash (altered)".into(),
                });
            }
            each(&event);
            prev = event.hash;
            expected += 1;
        }
        Ok(expected - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(kind: &str, target: Option<&str>, task: Option<&str>) -> EventDraft {
        EventDraft {
            kind: kind.into(),
            target: target.map(String::from),
            task: task.map(String::from),
            ..EventDraft::default()
        }
    }

    #[test]
    fn a_store_held_elsewhere_is_refused_as_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _held = EventLog::open(dir.path()).unwrap();
        let err = match EventReader::open(dir.path()) {
            Err(e) => e,
            Ok(_) => panic!("a second handle opened a held store"),
        };
        assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("in use by another leviathan-host process"),
            "{message}"
        );
        assert!(!message.contains("Os {"), "{message}");
    }

    /// A history with attempts, outcomes, skips and PRs over two targets.
    fn history(log: &EventLog, round: u32) {
        for (i, target) in ["t1", "t2"].iter().enumerate() {
            let task = format!("k{round}");
            let attempt = format!("{round:04x}{i:04x}");
            let mut started = draft("attempt.started", Some(target), Some(&task));
            started.attempt = Some(attempt.clone());
            let mut done = draft(
                if i == 0 {
                    "attempt.succeeded"
                } else {
                    "attempt.failed"
                },
                Some(target),
                Some(&task),
            );
            done.attempt = Some(attempt);
            done.payload =
                serde_json::json!({"kind": "timeout", "message": "slow", "digest": "sha256:ab"});
            let mut skipped = draft("target.skipped", Some(target), None);
            skipped.payload = serde_json::json!({"reason": "max_open_prs", "message": "1 open"});
            let mut task_skip = draft("task.skipped", Some(target), Some("other"));
            task_skip.payload = serde_json::json!({"reason": "deps"});
            log.append(vec![started, done, skipped, task_skip]).unwrap();
        }
    }

    /// Replaces (or with `None` removes) the stored checkpoint of a closed log.
    fn set_checkpoint(dir: &Path, bytes: Option<&[u8]>) {
        let db = open_db(dir).unwrap();
        let tree = db.open_tree(super::super::checkpoint::TREE).unwrap();
        match bytes {
            Some(b) => tree.insert(b"projection", b).map(|_| ()).unwrap(),
            None => tree.remove(b"projection").map(|_| ()).unwrap(),
        }
        db.flush().unwrap();
    }

    #[test]
    fn a_checkpoint_replays_only_what_follows_it_and_equals_a_full_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EventLog::open(dir.path()).unwrap();
            history(&log, 1);
        } // closed: a checkpoint at event 8
        {
            let log = EventLog::open(dir.path()).unwrap();
            assert_eq!(log.shared.checkpoint_seq.load(Ordering::SeqCst), 8);
            history(&log, 2);
            // Lookups wait for the background index and see both sides of it.
            assert_eq!(log.by_target("t1", 0, 100).unwrap().len(), 8);
            log.flush().unwrap();
            history(&log, 3);
        }
        let with_checkpoint = {
            let log = EventLog::open(dir.path()).unwrap();
            assert_eq!(log.shared.checkpoint_seq.load(Ordering::SeqCst), 24);
            let t2: Vec<u64> = log
                .by_target("t2", 0, 100)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(t2.len(), 12);
            assert!(t2.windows(2).all(|w| w[0] < w[1]), "{t2:?}");
            log.projection().unwrap()
        };
        set_checkpoint(dir.path(), None);
        let rebuilt = EventLog::open(dir.path()).unwrap();
        assert_eq!(rebuilt.shared.checkpoint_seq.load(Ordering::SeqCst), 0);
        assert_eq!(rebuilt.projection().unwrap(), with_checkpoint);
        assert_eq!(with_checkpoint.targets["t2"].attempts_failed, 3);
        assert_eq!(
            rebuilt.projection().unwrap().attempt_owner("00020001"),
            Some(("t2", "k2"))
        );
    }

    #[test]
    fn indexes_are_stored_in_runs_and_rebuilt_from_the_log_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let lookups = |log: &EventLog| {
            (
                log.by_target("t1", 0, 100_000).unwrap().len(),
                log.by_task("t2", "k2", 0, 100).unwrap().len(),
                log.by_attempt("00020001", 0, 100).unwrap().len(),
                log.latest_by_task("t1", "other", Page::count(2))
                    .unwrap()
                    .iter()
                    .map(|e| e.seq)
                    .collect::<Vec<_>>(),
                log.newest_page(Some("t2"), u64::MAX, Page::count(1))
                    .unwrap()
                    .events[0]
                    .seq,
            )
        };
        let filler = (MIN_RUN_EVENTS + 5) as usize;
        let truth = {
            let log = EventLog::open(dir.path()).unwrap();
            history(&log, 1);
            history(&log, 2);
            log.append(vec![draft("x", Some("t1"), None); filler])
                .unwrap();
            history(&log, 3);
            lookups(&log)
        };
        let last = 16 + filler as u64 + 8;
        assert_eq!(truth, (filler + 12, 2, 2, vec![12, last - 4], last));
        let reopened = EventLog::open(dir.path()).unwrap();
        assert_eq!(reopened.indexes().unwrap().runs(), 1, "stored at close");
        assert_eq!(reopened.indexes().unwrap().stored_through(), last);
        assert_eq!(lookups(&reopened), truth);
        // A few more events: too few for a run, so the next open indexes them again.
        history(&reopened, 4);
        drop(reopened);
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.indexes().unwrap().runs(), 1);
        assert_eq!(log.by_target("t1", 0, 100_000).unwrap().len(), filler + 16);
        drop(log);
        // As an older version left the store: no index tree, with or without a
        // checkpoint of the projection.
        for checkpoint in [true, false] {
            {
                let db = open_db(dir.path()).unwrap();
                assert!(db.drop_tree(super::super::index::TREE).unwrap());
                db.flush().unwrap();
            }
            if !checkpoint {
                set_checkpoint(dir.path(), None);
            }
            let log = EventLog::open(dir.path()).unwrap();
            assert_eq!(
                log.shared.checkpoint_seq.load(Ordering::SeqCst),
                if checkpoint { last + 8 } else { 0 }
            );
            assert_eq!(log.indexes().unwrap().runs(), 1, "indexed while opening");
            assert_eq!(log.by_target("t1", 0, 100_000).unwrap().len(), filler + 16);
            assert_eq!(log.by_attempt("00020001", 0, 100).unwrap().len(), 2);
            assert_eq!(log.projection().unwrap().targets["t2"].attempts_failed, 4);
        }
        // The index reaching past the log (a store put back from an older copy).
        {
            let db = open_db(dir.path()).unwrap();
            let tree = db.open_tree("events").unwrap();
            tree.remove(event_key(last + 8)).unwrap();
            db.flush().unwrap();
        }
        set_checkpoint(dir.path(), None);
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.last_seq(), last + 7);
        assert_eq!(log.by_task("t2", "other", 0, 100).unwrap().len(), 3);
        drop(log);
        // The index keys sort apart from the events: the reader finds the newest.
        let reader = EventReader::open(dir.path()).unwrap();
        assert_eq!(reader.last_seq().unwrap(), last + 7);
    }

    #[test]
    fn a_log_over_many_epochs_reads_verifies_and_reopens_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let per_epoch = 5;
        let live = {
            let log = EventLog::open_with_epochs(dir.path(), per_epoch).unwrap();
            for round in 1..=6 {
                history(&log, round);
            }
            assert_eq!(
                log.shared.epochs.count(),
                6,
                "groups of 4 never split: 8 events each"
            );
            log.projection().unwrap()
        };
        let check = |log: &EventLog| {
            assert_eq!(log.last_seq(), 48);
            assert_eq!(log.verify(), Ok(48));
            let all: Vec<u64> = log.after(0, 100).unwrap().iter().map(|e| e.seq).collect();
            assert_eq!(all, (1..=48).collect::<Vec<_>>());
            let page = log.after_page(3, Page::count(7)).unwrap();
            assert_eq!(page.events.first().map(|e| e.seq), Some(4));
            assert_eq!((page.events.len(), page.more), (7, true));
            assert_eq!(log.get(17).unwrap().unwrap().seq, 17);
            assert_eq!(log.get(2).unwrap().unwrap().seq, 2);
            assert_eq!(log.get(41).unwrap().unwrap().seq, 41);
            assert_eq!(log.by_target("t2", 0, 100).unwrap().len(), 24);
            let newest = log
                .newest_page(Some("t1"), u64::MAX, Page::count(3))
                .unwrap();
            assert_eq!(
                newest.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                [44, 43, 42]
            );
            assert_eq!(log.by_attempt("00030001", 0, 9).unwrap().len(), 2);
        };
        let log = EventLog::open_with_epochs(dir.path(), per_epoch).unwrap();
        check(&log);
        assert_eq!(log.projection().unwrap(), live);
        // More events go into the newest epoch, or a new one, and chain on.
        history(&log, 7);
        assert_eq!(log.verify(), Ok(56));
        drop(log);
        set_checkpoint(dir.path(), None);
        {
            let log = EventLog::open_with_epochs(dir.path(), per_epoch).unwrap();
            assert_eq!(log.last_seq(), 56);
            assert_eq!(
                log.projection().unwrap().targets["t1"].attempts_succeeded,
                7
            );
        }
        // Reopened with the default epoch size: the newest epoch simply fills on.
        let log = EventLog::open(dir.path()).unwrap();
        history(&log, 8);
        assert_eq!(log.verify(), Ok(64));
        drop(log);
        let reader = EventReader::open(dir.path()).unwrap();
        assert_eq!(reader.last_seq().unwrap(), 64);
        assert_eq!(reader.after(30, 5).unwrap()[0].seq, 31);
        drop(reader);
        // An epoch's event altered on disk: verify names it.
        {
            let db = open_db(&dir.path().join("epochs").join(format!("{:020}", 17))).unwrap();
            let tree = db.open_tree("events").unwrap();
            let mut event: serde_json::Value =
                serde_json::from_slice(&tree.get(event_key(22)).unwrap().unwrap()).unwrap();
            event["payload"] = serde_json::json!({"forged": true});
            tree.insert(event_key(22), serde_json::to_vec(&event).unwrap())
                .unwrap();
            db.flush().unwrap();
        }
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.verify().unwrap_err().seq, 22);
    }

    #[test]
    fn a_checkpoint_off_the_chain_or_unreadable_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let truth = {
            let log = EventLog::open(dir.path()).unwrap();
            history(&log, 1);
            history(&log, 2);
            log.projection().unwrap()
        };
        // A checkpoint claiming another hash for its event (a log rewritten under it).
        let mut forged = truth.clone();
        forged.targets.get_mut("t1").unwrap().attempts_succeeded = 99;
        let stored = serde_json::json!({
            "format": super::super::checkpoint::FORMAT,
            "seq": truth.last_seq,
            "hash": "0".repeat(64),
            "projection": forged,
        });
        for bytes in [
            serde_json::to_vec(&stored).unwrap(),
            b"{ not json".to_vec(),
            serde_json::to_vec(
                &serde_json::json!({"format": 1, "seq": 1, "hash": "x", "projection": {}}),
            )
            .unwrap(),
        ] {
            set_checkpoint(dir.path(), Some(&bytes));
            let log = EventLog::open(dir.path()).unwrap();
            assert_eq!(log.projection().unwrap(), truth);
            assert_eq!(log.by_target("t1", 0, 100).unwrap().len(), 8);
        }
    }

    #[test]
    fn appends_chain_and_reopen_continues() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EventLog::open(dir.path()).unwrap();
            let events = log
                .append(vec![
                    draft("a.b", Some("t1"), Some("x")),
                    draft("c", None, None),
                ])
                .unwrap();
            assert_eq!(events[0].seq, 1);
            assert_eq!(events[0].prev_hash, GENESIS_HASH);
            assert_eq!(events[1].prev_hash, events[0].hash);
        }
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.last_seq(), 2);
        let third = log.append(vec![draft("d", Some("t1"), Some("y"))]).unwrap();
        assert_eq!(third[0].seq, 3);
        assert_eq!(log.verify(), Ok(3));
        assert_eq!(log.after(1, 10).unwrap().len(), 2);
        assert_eq!(
            log.by_target("t1", 0, 10)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(log.by_task("t1", "y", 0, 10).unwrap().len(), 1);
        assert_eq!(
            log.by_target("t", 0, 10).unwrap().len(),
            0,
            "prefixes match whole names"
        );
    }

    #[test]
    fn newest_pages_walk_back_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let drafts = (0..7)
            .map(|i| draft("e", Some(if i % 2 == 0 { "even" } else { "odd" }), None))
            .collect();
        log.append(drafts).unwrap();
        let seqs = |p: &Paged| p.events.iter().map(|e| e.seq).collect::<Vec<_>>();
        let first = log.newest_page(None, u64::MAX, Page::count(3)).unwrap();
        assert_eq!((seqs(&first), first.more), (vec![7, 6, 5], true));
        let last = log.newest_page(None, 3, Page::count(3)).unwrap();
        assert_eq!((seqs(&last), last.more), (vec![2, 1], false));
        let even = log.newest_page(Some("even"), 7, Page::count(2)).unwrap();
        assert_eq!((seqs(&even), even.more), (vec![5, 3], true));
        let none = log
            .newest_page(Some("nobody"), u64::MAX, Page::count(2))
            .unwrap();
        assert!(none.events.is_empty() && !none.more);
    }

    #[test]
    fn projection_after_reopen_equals_the_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let live = {
            let log = EventLog::open(dir.path()).unwrap();
            let mut started = draft("attempt.started", Some("t\"1"), Some("ké"));
            started.attempt = Some("1a2b3c4d".into());
            let mut failed = started.clone();
            failed.kind = "attempt.failed".into();
            failed.payload = serde_json::json!({"kind": "policy \"x\"", "message": "m"});
            let mut opened = started.clone();
            opened.kind = "pr.opened".into();
            opened.payload =
                serde_json::json!({"pr": 12, "branch": "agent/task-exec-attempt-ké-1a2b3c4d"});
            log.append(vec![
                started,
                failed,
                opened,
                draft("autonomy.paused", None, None),
            ])
            .unwrap();
            log.projection().unwrap()
        };
        let reopened = EventLog::open(dir.path()).unwrap().projection().unwrap();
        assert_eq!(reopened, live);
        let task = &live.targets["t\"1"].tasks["ké"];
        assert_eq!(task.attempts[0].failure.as_deref(), Some("policy \"x\""));
        assert_eq!(
            task.prs[0].branch.as_deref(),
            Some("agent/task-exec-attempt-ké-1a2b3c4d")
        );
        assert!(live.paused);
        assert_eq!(live.last_seq, 4);
    }

    #[test]
    fn invalid_drafts_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let err = log
            .append(vec![draft("ok", None, None), draft("Bad Type", None, None)])
            .unwrap_err();
        assert!(err.to_string().contains("event 1: field `type`"), "{err}");
        assert_eq!(log.last_seq(), 0);
        assert_eq!(log.after(0, 10).unwrap().len(), 0);
    }

    #[test]
    fn concurrent_appends_are_contiguous() {
        let dir = tempfile::tempdir().unwrap();
        let log = std::sync::Arc::new(EventLog::open(dir.path()).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        log.append(vec![draft("x", None, None)]).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(log.verify(), Ok(200));
    }
}
