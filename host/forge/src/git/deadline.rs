//! Running a git command that talks to a remote under a deadline: a remote that
//! stops answering (a dropped connection, a firewall that swallows packets) would
//! otherwise hold the worker serving its target for ever. The command runs in a
//! process group of its own, so the helpers it starts (`git-remote-https`, `ssh`)
//! are stopped with it. Being in a group of its own, it does not get the signal a
//! terminal's Ctrl-C sends the host: a host that stops calls [`stop_all`] to take
//! its running commands with it, and what a host killed outright left running is
//! stopped by the next taker of the clone ([`super::leftover`]). What the command
//! prints is read within bounds ([`super::capture`]).

use super::{capture, leftover};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a command run under a deadline left.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The end of what the command said on its standard error.
    pub stderr: Vec<u8>,
    /// The deadline passed and the command's process group was killed.
    pub timed_out: bool,
    /// The command printed more than its bound and its process group was killed.
    pub stdout_overflowed: bool,
    /// The watched directory grew past its bound and the process group was killed.
    pub outgrew: bool,
}

/// A directory whose files (its own and its subdirectories', see [`objects_bytes`]) a
/// command must not make larger than `max_bytes` in all (a clone's `.git/objects`):
/// checked every [`GROWTH_CHECK`] while the command runs, and the command's process
/// group killed past the bound.
#[derive(Debug, Clone)]
pub struct Growth {
    pub dir: std::path::PathBuf,
    pub max_bytes: u64,
}

/// How often a [`Growth`] bound is checked.
pub const GROWTH_CHECK: Duration = Duration::from_millis(100);

/// The bytes of the regular files in `dir` and in its immediate subdirectories (git's
/// `objects`: loose objects in `xx/`, packs in `pack/`, each file being written
/// included); links are not followed, and a directory that does not exist (yet) holds 0.
pub fn objects_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut bytes = 0u64;
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_file() => {
                bytes += entry.metadata().map_or(0, |m| m.len());
            }
            Ok(kind) if kind.is_dir() => {
                let Ok(inner) = std::fs::read_dir(entry.path()) else {
                    continue;
                };
                for file in inner.flatten() {
                    if file.file_type().is_ok_and(|k| k.is_file()) {
                        bytes += file.metadata().map_or(0, |m| m.len());
                    }
                }
            }
            _ => {}
        }
    }
    bytes
}

/// Why the watchdog killed a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    Not,
    Deadline,
    Growth,
}

/// How much of a command's output is kept.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Bytes of standard output past which the command is stopped.
    pub stdout: usize,
    /// Bytes kept from the end of its standard error.
    pub stderr: usize,
}

impl Bounds {
    /// The bounds of every git command the host runs.
    pub const GIT: Bounds = Bounds {
        stdout: capture::MAX_STDOUT,
        stderr: capture::MAX_STDERR,
    };
}

/// The process groups of the commands running under a deadline. A group is listed
/// from its start until its leader has exited and before it is reaped, so a kill
/// through this list never reaches a recycled process id.
static RUNNING: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<Pid>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills every command running under a deadline, with its helpers, and returns how
/// many there were: what a host that is stopping does last, so that no git goes on
/// in a clone whose claim the host is letting go (the next run would take its
/// lock files for a killed git's). The commands' callers see them fail.
pub fn stop_all() -> usize {
    let groups = running();
    for &group in groups.iter() {
        let _ = kill_process_group(group, Signal::KILL);
    }
    groups.len()
}

/// [`run_bounded`] within [`Bounds::GIT`] and without a growth bound.
#[cfg(test)]
pub fn run(command: &mut Command, deadline: Duration) -> io::Result<Finished> {
    run_bounded(command, deadline, Bounds::GIT, None, None)
}

/// Runs `command` (stdin closed, output captured within `bounds`) and kills its
/// process group if it has not exited within `deadline` (or at [`stop_all`]), once it
/// has printed more than `bounds.stdout` bytes, or once it has grown `growth`'s
/// directory past its bound. While it runs, it is recorded at `record` (a clone's
/// [`leftover::record_path`]), for the clone's next taker should the host die.
pub fn run_bounded(
    command: &mut Command,
    deadline: Duration,
    bounds: Bounds,
    growth: Option<Growth>,
    record: Option<&std::path::Path>,
) -> io::Result<Finished> {
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Listed under the lock it was spawned under: a concurrent [`stop_all`] kills it
    // or comes before it.
    let mut listed = running();
    let mut child = command.spawn()?;
    let pid = Pid::from_child(&child);
    listed.push(pid);
    drop(listed);
    let _recorded = record.and_then(|path| leftover::record(path, pid));
    let stderr_reader = capture::stderr_in_background(child.stderr.take(), bounds.stderr);
    let stderr_reader = match stderr_reader {
        Ok(reader) => reader,
        Err(e) => return Err(stopped(child, e)),
    };
    // Set once the child has exited; checked under the lock before a kill. The child
    // is reaped only after the watchdog is done, so its group id cannot have been
    // reused by another process when the kill is sent.
    let exited = Arc::new(Mutex::new(false));
    let (done, wait_for_done) = mpsc::channel::<()>();
    let watchdog = {
        let exited = exited.clone();
        std::thread::Builder::new()
            .name("git-deadline".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let why = loop {
                    let left = deadline.saturating_sub(started.elapsed());
                    let wait = match &growth {
                        Some(_) => left.min(GROWTH_CHECK),
                        None => left,
                    };
                    if wait_for_done.recv_timeout(wait) != Err(RecvTimeoutError::Timeout) {
                        return Stopped::Not;
                    }
                    if started.elapsed() >= deadline {
                        break Stopped::Deadline;
                    }
                    if let Some(g) = &growth
                        && objects_bytes(&g.dir) > g.max_bytes
                    {
                        break Stopped::Growth;
                    }
                };
                let exited = exited.lock().unwrap_or_else(|p| p.into_inner());
                if *exited {
                    return Stopped::Not;
                }
                let _ = kill_process_group(pid, Signal::KILL);
                why
            })
    };
    let watchdog = match watchdog {
        Ok(watchdog) => watchdog,
        Err(e) => return Err(stopped(child, e)),
    };
    let stdout = child
        .stdout
        .take()
        .and_then(|pipe| capture::read_head(pipe, bounds.stdout).ok())
        .unwrap_or_default();
    if stdout.overflowed {
        // Not reaped yet, so the group id is still the command's.
        let _ = kill_process_group(pid, Signal::KILL);
    }
    wait_unreaped(pid);
    *exited.lock().unwrap_or_else(|p| p.into_inner()) = true;
    drop(done);
    let stopped = watchdog.join().unwrap_or(Stopped::Not);
    let status = child.wait()?;
    let stderr = stderr_reader.join().unwrap_or_default();
    Ok(Finished {
        status,
        stdout: stdout.bytes,
        stderr,
        timed_out: stopped == Stopped::Deadline,
        stdout_overflowed: stdout.overflowed,
        outgrew: stopped == Stopped::Growth,
    })
}

/// Stops `child` (and its group) when what watches it cannot be started; `error`.
fn stopped(mut child: std::process::Child, error: io::Error) -> io::Error {
    let pid = Pid::from_child(&child);
    let _ = kill_process_group(pid, Signal::KILL);
    wait_unreaped(pid);
    let _ = child.wait();
    error
}

/// Waits for the child `pid` to exit without reaping it (again when a signal
/// interrupts), then takes it off [`RUNNING`]: until the caller reaps it, its id
/// is still its own.
fn wait_unreaped(pid: Pid) {
    let exit = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
    while let Err(rustix::io::Errno::INTR) = waitid(WaitId::Pid(pid), exit) {}
    running().retain(|&p| p != pid);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_command_within_its_deadline_runs_to_the_end() {
        let done = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(!done.timed_out);
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, b"out\n");
        assert_eq!(done.stderr, b"err\n");
    }

    #[test]
    fn a_command_past_its_deadline_is_stopped_with_its_children() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-ran");
        // A grandchild that would outlive its parent, holding the pipes open: the
        // whole group goes.
        let script = format!("(sleep 3; touch {}) & sleep 60", marker.to_str().unwrap());
        let started = Instant::now();
        let done = run(
            Command::new("sh").args(["-c", &script]),
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(done.timed_out);
        assert_eq!(done.status.signal(), Some(9), "killed, not run to its end");
        std::thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
        assert!(!marker.exists(), "the grandchild outlived the deadline");
    }

    #[test]
    fn a_command_that_talks_without_end_is_kept_to_the_end_of_what_it_said() {
        // 8 MiB of messages, then git's own last word: the end is kept, the rest
        // read and dropped (the command never blocks on a full pipe).
        let script = "head -c 8388608 /dev/zero | tr '\\0' r >&2; echo 'fatal: the last word' >&2";
        let done = run(
            Command::new("sh").args(["-c", script]),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(done.status.success() && !done.timed_out && !done.stdout_overflowed);
        let said = String::from_utf8(done.stderr).unwrap();
        assert!(
            said.len() <= capture::MAX_STDERR + 64,
            "{} bytes kept",
            said.len()
        );
        assert!(
            said.ends_with("rrrfatal: the last word\n"),
            "{}",
            &said[said.len() - 40..]
        );
        let dropped = 8_388_608 + "fatal: the last word\n".len() - capture::MAX_STDERR;
        let note = format!("[{dropped} earlier bytes of messages left out]\n");
        assert!(said.starts_with(&note), "{}", &said[..60]);
    }

    #[test]
    fn a_command_that_prints_past_its_bound_is_stopped_at_once() {
        // `yes` never ends on its own: only the bound stops it before the deadline.
        let bounds = Bounds {
            stdout: 1 << 20,
            stderr: 1024,
        };
        let done = run_bounded(
            &mut Command::new("yes"),
            Duration::from_secs(120),
            bounds,
            None,
            None,
        )
        .unwrap();
        assert!(done.stdout_overflowed);
        assert!(!done.timed_out, "stopped by the bound, not by the deadline");
        assert!(!done.status.success());
        assert_eq!(done.stdout.len(), 1 << 20);
        let done = run_bounded(
            Command::new("sh").args(["-c", "head -c 1048576 /dev/zero"]),
            Duration::from_secs(60),
            bounds,
            None,
            None,
        )
        .unwrap();
        assert!(
            done.status.success() && !done.stdout_overflowed,
            "exactly the bound is fine"
        );
    }

    #[test]
    fn a_command_that_grows_its_directory_past_the_bound_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let dir_arg = dir.path().to_str().unwrap();
        // Writes 1 MiB every 20 ms into a file of the watched directory, for ever.
        let script = "while :; do head -c 1048576 /dev/zero >> \"$0/tmp_pack_x\"; sleep 0.02; done";
        let growth = Growth {
            dir: dir.path().to_path_buf(),
            max_bytes: 8 << 20,
        };
        let done = run_bounded(
            Command::new("sh").args(["-c", script, dir_arg]),
            Duration::from_secs(120),
            Bounds::GIT,
            Some(growth.clone()),
            None,
        )
        .unwrap();
        assert!(done.outgrew && !done.timed_out && !done.status.success());
        let grown = objects_bytes(&growth.dir);
        assert!(grown > 8 << 20 && grown < 64 << 20, "{grown} bytes");
        // Under its bound, a command runs to its end.
        let small = tempfile::tempdir().unwrap();
        let done = run_bounded(
            Command::new("sh").args([
                "-c",
                "head -c 1048576 /dev/zero > \"$0/small\"",
                small.path().to_str().unwrap(),
            ]),
            Duration::from_secs(60),
            Bounds::GIT,
            Some(Growth {
                dir: small.path().to_path_buf(),
                max_bytes: 8 << 20,
            }),
            None,
        )
        .unwrap();
        assert!(done.status.success() && !done.outgrew);
        assert_eq!(objects_bytes(small.path()), 1 << 20);
    }

    /// Set for the process [`a_host_that_stops_takes_its_commands_with_it`] runs
    /// its stand-in host in ([`stop_all`] would stop other tests' commands here).
    const STAND_IN: &str = "LEVIATHAN_DEADLINE_STAND_IN";

    #[test]
    fn a_host_that_stops_takes_its_commands_with_it() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "git::deadline::tests::stand_in_host_stopping",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(STAND_IN, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("stand-in host stopped"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The stand-in host of [`a_host_that_stops_takes_its_commands_with_it`]; a plain
    /// test run passes over it.
    #[test]
    fn stand_in_host_stopping() {
        if std::env::var_os(STAND_IN).is_none() {
            return;
        }
        // Two commands far from their deadline, one of them with a helper.
        let commands: Vec<_> = ["sleep 60", "sleep 60 & sleep 60"]
            .into_iter()
            .map(|script| {
                std::thread::spawn(move || {
                    run(
                        Command::new("sh").args(["-c", script]),
                        Duration::from_secs(120),
                    )
                    .unwrap()
                })
            })
            .collect();
        let started = Instant::now();
        while running().len() < 2 {
            assert!(started.elapsed() < Duration::from_secs(30), "never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(stop_all(), 2);
        for command in commands {
            let done = command.join().unwrap();
            assert!(!done.timed_out);
            assert!(!done.status.success(), "killed, not run to its end");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the helper held the pipes open"
        );
        assert!(running().is_empty());
        println!("stand-in host stopped");
    }
}
