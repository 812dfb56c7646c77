//! The commands a dead host left running in its clones.
//!
//! A host that stops runs `deadline::stop_all`; a host killed outright (`SIGKILL`,
//! the kernel's OOM killer, a hand-run `tick` killed) runs nothing, and the fetch or
//! clone it had started goes on without it, with no deadline and no bound, writing
//! into a clone whose claim the next run takes (and whose lock files that run would
//! remove as stale). So each command run on a clone's behalf under a deadline is
//! recorded beside the clone while it runs (its process group and the time it
//! started, which together name it even after its id is reused, and the boot and
//! process namespace they count in), and whoever takes the clone's claim next stops
//! what the record names before it touches the clone ([`stop_left_running`], from
//! `Claim::take`). A record from another boot or another container names nothing
//! here: what it named ended with its boot or its container.
//!
//! This costs a small file per remote command and nothing at spawn time: asking the
//! kernel to kill each command with its host (`PR_SET_PDEATHSIG`) would make every
//! spawn a `fork` of the host (measured: 8–12% more on the scheduler bench's first
//! pass) and reach only the command, not the helpers it starts.

use rustix::process::{Pid, Signal, kill_process_group};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The most of a record that is read (one is about 80 bytes).
const MAX_RECORD: u64 = 256;

/// How long a stopped command's group is given to be gone.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The record of the command running on behalf of the clone at `dir`:
/// `.<name>.running` beside it.
pub fn record_path(dir: &Path) -> PathBuf {
    super::claim::beside(dir, "running")
}

/// A command recorded as running on a clone's behalf; the record goes when this is
/// dropped (after the command has been waited for).
#[derive(Debug)]
pub struct Recorded {
    path: PathBuf,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Records the command whose process group is `group` (spawned, not yet reaped) at
/// `path`. `None` when it cannot be recorded (it has no `/proc` entry, or the file
/// cannot be written): the command runs unrecorded, as before records existed.
pub fn record(path: &Path, group: Pid) -> Option<Recorded> {
    let started = stat(group.as_raw_nonzero().get())?.started;
    let line = format!("{} {started} {}\n", group.as_raw_nonzero(), this_system()?);
    std::fs::write(path, line).ok()?;
    Some(Recorded {
        path: path.to_path_buf(),
    })
}

/// Stops the command recorded at `path`, with every process of its group, if it is
/// still running (its host died before it ended), waits up to [`STOP_WAIT`] for them
/// to be gone, removes the record, and returns the group's id when there was one to
/// stop. Only call it under the clone's claim.
pub fn stop_left_running(path: &Path) -> Option<i32> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_RECORD)
        .read_to_string(&mut text)
        .ok()?;
    let _ = std::fs::remove_file(path);
    let mut fields = text.split_whitespace();
    let group: i32 = fields.next()?.parse().ok()?;
    let started: u64 = fields.next()?.parse().ok()?;
    if fields.next() != Some(this_system()?) {
        return None;
    }
    // Group 1 would be a signal to every process the host may signal (`kill(-1)`);
    // no command of the host's ever leads it.
    if group <= 1 {
        return None;
    }
    let pid = Pid::from_raw(group)?;
    if !group_alive(group, started) {
        return None;
    }
    let _ = kill_process_group(pid, Signal::KILL);
    let since = Instant::now();
    while group_alive(group, started) && since.elapsed() < STOP_WAIT {
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(group)
}

/// Whether a live process of group `group` started no earlier than its leader did at
/// `started`: the leader itself (the same id started at the same time), or a helper
/// still running after the leader ended (a group's id is not handed out again while
/// a process of the group lives, so these are the recorded command's).
pub(super) fn group_alive(group: i32, started: u64) -> bool {
    match stat(group) {
        Some(leader) if leader.started != started => return false, // the id is another's
        Some(leader) if leader.live() => return true,
        _ => {} // ended (a zombie, or reaped): its helpers may still run
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(stat)
            .is_some_and(|p| p.group == group && p.started >= started && p.live())
    })
}

/// The boot and the process namespace this host's process ids and start times count
/// in (`<boot id>/<namespace>`, no spaces), or `None` where `/proc` does not say.
fn this_system() -> Option<&'static str> {
    static SYSTEM: OnceLock<Option<String>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
            let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
            let system = format!("{}/{}", boot.trim(), namespace.to_string_lossy());
            (!system.contains(char::is_whitespace)).then_some(system)
        })
        .as_deref()
}

/// What `/proc/<pid>/stat` says of a process.
struct Stat {
    state: char,
    group: i32,
    /// When it started, in clock ticks after boot.
    started: u64,
}

impl Stat {
    /// Not exited (an exited process nobody reaped yet is a zombie, `Z`).
    fn live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// The process `pid`'s state, group and start time, or `None` when there is none.
fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, and free to hold either): the state
    // (field 3), the parent (4), the process group (5), ... the start time (22).
    let (_, rest) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        group: fields.get(2)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    /// A process group of `sh` and a helper, both sleeping: what a fetch and its
    /// `git-remote-https` look like to the host.
    fn left_running() -> (std::process::Child, i32) {
        let child = Command::new("sh")
            .args(["-c", "sleep 60 & sleep 60; wait"])
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let id = child.id() as i32;
        (child, id)
    }

    #[test]
    fn a_command_left_running_is_stopped_with_its_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let path = record_path(&dir.path().join("clone"));
        let (mut child, id) = left_running();
        let recorded = record(&path, Pid::from_raw(id).unwrap()).unwrap();
        std::mem::forget(recorded); // the host died: nothing removes the record
        assert!(group_alive(id, stat(id).unwrap().started));
        assert_eq!(stop_left_running(&path), Some(id));
        assert!(!path.exists(), "the record is gone");
        child.wait().unwrap();
        // The helper was reparented, not reaped by this process: it must be gone too.
        assert!(
            !group_alive(id, 0),
            "a process of the group is still running"
        );
    }

    #[test]
    fn a_record_of_an_ended_command_or_a_reused_id_stops_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = record_path(&dir.path().join("clone"));
        let (mut child, id) = left_running();
        // The same id started at another time is another process; so is one of
        // another boot or container.
        let started = stat(id).unwrap().started;
        let here = this_system().unwrap();
        for other in [
            format!("{id} {} {here}\n", started + 1),
            format!("{id} {started} 00000000-0000-0000-0000-000000000000/pid:[1]\n"),
            format!("{id} {started}\n"),
        ] {
            std::fs::write(&path, other).unwrap();
            assert_eq!(stop_left_running(&path), None);
            assert!(
                group_alive(id, started),
                "an unrelated process is left alone"
            );
        }
        // A record of a command that ended normally goes with it.
        let recorded = record(&path, Pid::from_raw(id).unwrap()).unwrap();
        let _ = kill_process_group(Pid::from_raw(id).unwrap(), Signal::KILL);
        child.wait().unwrap();
        drop(recorded);
        assert!(!path.exists());
        // A record naming group 1 (every process, to `kill`) stops nothing.
        let init = stat(1).unwrap().started;
        std::fs::write(&path, format!("1 {init} {here}\n")).unwrap();
        assert_eq!(stop_left_running(&path), None);
        // No record, or a mangled one: nothing to stop.
        assert_eq!(stop_left_running(&path), None);
        std::fs::write(&path, "not a record").unwrap();
        assert_eq!(stop_left_running(&path), None);
    }
}
