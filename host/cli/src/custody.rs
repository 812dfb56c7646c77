//! The chain of custody of imported history: what `events import` reports, and the
//! lines `events verify` adds for each segment the original's chain vouches for.

use leviathan_events::Event;
use leviathan_events::import::{IMPORT_COMPLETED, Journal};

/// Prints what an import did: its range (`appended`: the journal's events, then the
/// import record), how far the original's chain verified, and per original type what
/// was imported as-is and what was kept as legacy, and why.
pub fn print_import(journal: &Journal, appended: &[Event]) {
    let (Some(first), Some(record)) = (appended.first(), appended.last()) else {
        return;
    };
    let count = appended.len() - 1;
    println!(
        "imported {count} events as {}..={}, closed by `{IMPORT_COMPLETED}` at {}",
        first.seq,
        record.seq - 1,
        record.seq
    );
    let head = journal.chain.head.as_deref().unwrap_or("(none)");
    match &journal.chain.first_break {
        None => println!("original chain verified: {count} events, head {head}"),
        Some(b) => println!(
            "original chain BROKEN at line {} (event {}, {}: {}); verified {} events up to {head}; imported anyway (--allow-broken-chain), and the log records it",
            b.line, b.event_id, b.field, b.reason, journal.chain.verified
        ),
    }
    for (original, t) in &journal.report {
        let mut line = format!("  {original}: ");
        if t.as_is > 0 {
            line.push_str(&format!("{} as `{}`", t.as_is, t.imported_as));
        }
        if t.legacy > 0 {
            let why: Vec<String> = t
                .reasons
                .iter()
                .map(|(reason, n)| format!("{reason}: {n}"))
                .collect();
            if t.as_is > 0 {
                line.push_str(", ");
            }
            line.push_str(&format!(
                "{} kept as legacy ({}), never acted on",
                t.legacy,
                why.join("; ")
            ));
        }
        println!("{line}");
    }
}

/// A segment of imported history, from its `import.completed` record.
pub struct Segment {
    first: u64,
    last: u64,
    file: String,
    verified: bool,
    head: String,
    verified_events: u64,
    first_break: String,
}

impl Segment {
    /// The segment `event` closes, if it is an import record.
    pub fn of(event: &Event) -> Option<Segment> {
        if event.kind != IMPORT_COMPLETED {
            return None;
        }
        let p = &event.payload;
        let events = p["events"].as_u64()?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("(none)").to_string();
        let b = &p["first_break"];
        Some(Segment {
            first: event.seq.saturating_sub(events),
            last: event.seq.saturating_sub(1),
            file: text(&p["file"]),
            verified: p["chain"] == "verified",
            head: text(&p["original_head"]),
            verified_events: p["verified_events"].as_u64().unwrap_or(0),
            first_break: format!(
                "line {}, event {}, {}: {}",
                b["line"],
                text(&b["event_id"]),
                text(&b["field"]),
                text(&b["reason"])
            ),
        })
    }

    /// The line `events verify` prints for it.
    pub fn describe(&self) -> String {
        let range = format!("{}..={}", self.first, self.last);
        if self.verified {
            format!(
                "events {range} imported from {}: original chain verified up to {}, then ours",
                self.file, self.head
            )
        } else {
            format!(
                "events {range} imported from {}: original chain NOT verified (imported with --allow-broken-chain; first break at {}); it vouches for its first {} events only, up to {}, then ours",
                self.file, self.first_break, self.verified_events, self.head
            )
        }
    }
}
