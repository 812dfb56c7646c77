//! Running a git command that talks to a remote under a deadline: a remote that
//! stops answering (a dropped connection, a firewall that swallows packets) would
//! otherwise hold the worker serving its target for ever. The command runs in a
//! process group of its own, so the helpers it starts (`git-remote-https`, `ssh`)
//! are stopped with it.

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

/// Runs `command` (stdin closed, output captured) and kills its process group if it
/// has not exited within `deadline`.
pub fn run(command: &mut Command, deadline: Duration) -> io::Result<Finished> {
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    let pid = Pid::from_child(&child);
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
    // Wait for the exit without reaping the child (again when a signal interrupts).
    let exit = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
    while let Err(rustix::io::Errno::INTR) = waitid(WaitId::Pid(pid), exit) {}
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
    let _ = kill_process_group(Pid::from_child(&child), Signal::KILL);
    let _ = child.wait();
    error
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
}
