//! Running a git command that talks to a remote under a deadline: a remote that
//! stops answering (a dropped connection, a firewall that swallows packets) would
//! otherwise hold the worker serving its target for ever. The command runs in a
//! process group of its own, so the helpers it starts (`git-remote-https`, `ssh`)
//! are stopped with it. Being in a group of its own, it does not get the signal a
//! terminal's Ctrl-C sends the host: a host that stops calls [`stop_all`] to take
//! its running commands with it.

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process_group, waitid};
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a command run under a deadline left.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The deadline passed and the command's process group was killed.
    pub timed_out: bool,
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

/// Runs `command` (stdin closed, output captured) and kills its process group if it
/// has not exited within `deadline` (or at [`stop_all`]).
pub fn run(command: &mut Command, deadline: Duration) -> io::Result<Finished> {
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
    let stderr = child.stderr.take();
    let stderr_reader = std::thread::Builder::new()
        .name("git-stderr".into())
        .spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = stderr {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        });
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
                if wait_for_done.recv_timeout(deadline) != Err(RecvTimeoutError::Timeout) {
                    return false;
                }
                let exited = exited.lock().unwrap_or_else(|p| p.into_inner());
                if *exited {
                    return false;
                }
                let _ = kill_process_group(pid, Signal::KILL);
                true
            })
    };
    let watchdog = match watchdog {
        Ok(watchdog) => watchdog,
        Err(e) => return Err(stopped(child, e)),
    };
    let mut stdout = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_end(&mut stdout);
    }
    wait_unreaped(pid);
    *exited.lock().unwrap_or_else(|p| p.into_inner()) = true;
    drop(done);
    let timed_out = watchdog.join().unwrap_or(false);
    let status = child.wait()?;
    let stderr = stderr_reader.join().unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr,
        timed_out,
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
