//! Group commit: one thread seals, writes and fsyncs the appends of every caller
//! waiting at that moment as a single sled batch, then acknowledges each. Under
//! concurrency, N appends cost one fsync instead of N.

use super::event::{Event, EventDraft, Provenance};
use super::store::{Shared, StoreError, event_key, view_of};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The most events one group commit takes before it writes.
const MAX_GROUP_EVENTS: usize = 10_000;

/// Where the chain continues.
pub(super) struct Head {
    pub next_seq: u64,
    pub last_hash: String,
}

struct Job {
    drafts: Vec<EventDraft>,
    by: Provenance,
    reply: mpsc::SyncSender<Result<Vec<Event>, StoreError>>,
}

/// The committing thread and the queue into it; dropping it drains the queue and
/// joins the thread.
pub(super) struct Committer {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the thread, continuing the chain at `head`.
    pub fn start(shared: Arc<Shared>, head: Head) -> std::io::Result<Committer> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("event-commit".into())
            .spawn(move || run(&shared, head, jobs))?;
        Ok(Committer {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Queues `drafts` (already validated) by `by` and waits until they are durable.
    pub fn submit(
        &self,
        drafts: Vec<EventDraft>,
        by: Provenance,
    ) -> Result<Vec<Event>, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let queue = self.queue.as_ref().ok_or(StoreError::Closed)?;
        queue
            .send(Job { drafts, by, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(shared: &Arc<Shared>, mut head: Head, jobs: mpsc::Receiver<Job>) {
    // Once a write or fsync fails, what sled holds is unknown: refuse every later
    // append rather than risk reusing a sequence number.
    let mut broken: Option<String> = None;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        let mut count = group[0].drafts.len();
        while count < MAX_GROUP_EVENTS {
            match jobs.try_recv() {
                Ok(job) => {
                    count += job.drafts.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        if let Some(message) = &broken {
            for job in group {
                let _ = job.reply.send(Err(failed(shared, message)));
            }
            continue;
        }
        if let Err(message) = commit(shared, &mut head, group) {
            tracing::error!(dir = %shared.dir.display(), error = %message, "event log write failed; appends are refused from now on");
            broken = Some(message);
        }
    }
}

fn failed(shared: &Shared, message: &str) -> StoreError {
    StoreError::Failed {
        dir: shared.dir.clone(),
        message: message.to_string(),
    }
}

/// Seals, writes and fsyncs one group, then updates the in-memory views and
/// answers every job. Returns the error message when sled failed.
fn commit(shared: &Arc<Shared>, head: &mut Head, group: Vec<Job>) -> Result<(), String> {
    let ts = leviathan_domain::clock::now_ms();
    let mut batch = sled::Batch::default();
    let mut answered = Vec::with_capacity(group.len());
    let mut seq = head.next_seq;
    let mut prev = head.last_hash.clone();
    for job in group {
        let mut events = Vec::with_capacity(job.drafts.len());
        let mut rows = Vec::with_capacity(job.drafts.len());
        let (start_seq, start_prev) = (seq, prev.clone());
        let mut refused = None;
        for (index, draft) in job.drafts.into_iter().enumerate() {
            let event = Event::seal(draft, &job.by, seq, ts, &prev);
            match serde_json::to_vec(&event) {
                Ok(bytes) => rows.push((event_key(seq), bytes)),
                Err(e) => {
                    refused = Some(StoreError::Invalid {
                        index,
                        field: "payload",
                        message: e.to_string(),
                    });
                    break;
                }
            }
            prev = event.hash.clone();
            seq += 1;
            events.push(event);
        }
        if let Some(error) = refused {
            // This job stores nothing; the chain continues where it started.
            (seq, prev) = (start_seq, start_prev);
            let _ = job.reply.send(Err(error));
            continue;
        }
        for (key, bytes) in rows {
            batch.insert(key, bytes);
        }
        answered.push((job.reply, events));
    }
    // A new epoch, when the newest is full, before anything of this group goes in.
    let written = shared.epochs.roll_if_full(head.next_seq).and_then(|()| {
        let epoch = shared.epochs.newest();
        epoch.tree.apply_batch(batch)?;
        epoch.db.flush().map(|_| ())
    });
    if let Err(e) = written {
        let message = e.to_string();
        for (reply, _) in answered {
            let _ = reply.send(Err(failed(shared, &message)));
        }
        return Err(message);
    }
    head.next_seq = seq;
    head.last_hash = prev;
    {
        let mut indexes = shared.indexes.write().unwrap_or_else(|p| p.into_inner());
        let mut projection = shared.projection.write().unwrap_or_else(|p| p.into_inner());
        for (_, events) in &answered {
            for event in events {
                let (target, task, attempt) = event.refs();
                indexes.add(event.seq, target, task, attempt);
                projection.apply(&view_of(event));
            }
        }
    }
    shared.last_seq.store(seq - 1, Ordering::SeqCst);
    shared.durable_seq.send_replace(seq - 1);
    if super::checkpoint::due(
        seq - 1,
        shared.checkpoint_seq.load(Ordering::SeqCst),
        leviathan_domain::clock::now_ms()
            .saturating_sub(shared.checkpoint_ms.load(Ordering::SeqCst)),
    ) && let Err(e) = shared.checkpoint_in_background()
    {
        tracing::warn!(error = %e, "projection checkpoint not written");
    }
    for (reply, events) in answered {
        let _ = reply.send(Ok(events));
    }
    Ok(())
}
