//! Test helper: appends events to the log in `argv[1]` from four threads forever,
//! printing `ack <seq>` for every acknowledged (durable) event. The crash-safety
//! test kills it with SIGKILL at an arbitrary moment.

use leviathan_events::{EventDraft, EventLog};
use std::io::Write;
use std::sync::{Arc, Mutex};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: event-writer DATA_DIR");
    let log = Arc::new(EventLog::open(std::path::Path::new(&dir)).expect("open event log"));
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            let stdout = stdout.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let mut draft = EventDraft::new("test.load");
                    draft.target = Some(format!("target-{t}"));
                    draft.payload = serde_json::json!({"thread": t, "i": i, "pad": "x".repeat(64)});
                    let batch = if i % 10 == 0 {
                        vec![draft.clone(), draft.clone(), draft]
                    } else {
                        vec![draft]
                    };
                    let events = log.append(batch).expect("append");
                    let mut out = stdout.lock().expect("stdout");
                    for e in events {
                        let _ = writeln!(out, "ack {}", e.seq);
                    }
                    let _ = out.flush();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
