//! Reading what a git command prints, within bounds. A remote is as hostile as the
//! target behind it: a server (or, on a push, the remote's own hooks) can send
//! `remote: ...` lines to git's standard error for as long as the deadline lets it,
//! and a remote advertising millions of branches makes `ls-remote` print without
//! end. The host keeps at most [`MAX_STDOUT`] bytes of a command's output (past
//! that the command is stopped and fails) and the last [`MAX_STDERR`] bytes of its
//! messages (the rest is read and dropped, so the command never blocks on a full
//! pipe).

use std::io::{self, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

/// The most a git command may print on its standard output: ample for `ls-remote
/// --heads` of a remote with several hundred thousand branches.
pub(crate) const MAX_STDOUT: usize = 64 << 20;

/// How much of the end of a command's standard error is kept: git's own error comes
/// last, after whatever the remote said, and what is kept ends up in an error, an
/// event and the API.
pub(crate) const MAX_STDERR: usize = 4 << 10;

/// The bytes read from a command's standard output.
#[derive(Default)]
pub(crate) struct Output {
    pub bytes: Vec<u8>,
    /// There was more than the bound: the reading stopped there.
    pub overflowed: bool,
}

/// Reads `pipe` to its end, or until it has given more than `max` bytes.
pub(crate) fn read_head(pipe: impl Read, max: usize) -> io::Result<Output> {
    let mut bytes = Vec::new();
    pipe.take(max as u64 + 1).read_to_end(&mut bytes)?;
    let overflowed = bytes.len() > max;
    bytes.truncate(max);
    Ok(Output { bytes, overflowed })
}

/// Reads `pipe` to its end and keeps its last `max` bytes, after a line saying how
/// many came before them when some did.
pub(crate) fn read_tail(mut pipe: impl Read, max: usize) -> Vec<u8> {
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0usize;
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                // Trimmed once it holds twice the bound, so each byte moves at most once.
                if kept.len() > 2 * max {
                    let excess = kept.len() - max;
                    kept.drain(..excess);
                    dropped += excess;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if kept.len() > max {
        let excess = kept.len() - max;
        kept.drain(..excess);
        dropped += excess;
    }
    if dropped > 0 {
        let mut text = format!("[{dropped} earlier bytes of messages left out]\n").into_bytes();
        text.extend_from_slice(&kept);
        return text;
    }
    kept
}

/// Reads a command's standard error on a thread of its own with [`read_tail`], so
/// that its standard output can be read at the same time: a command that fills one
/// pipe while the host waits on the other would otherwise wait for ever.
pub(crate) fn stderr_in_background(
    pipe: Option<impl Read + Send + 'static>,
    max: usize,
) -> io::Result<JoinHandle<Vec<u8>>> {
    std::thread::Builder::new()
        .name("git-stderr".into())
        .spawn(move || pipe.map(|p| read_tail(p, max)).unwrap_or_default())
}

/// What a finished command left: its status, its output up to a bound, and the end
/// of its messages.
pub(crate) struct Collected {
    pub status: ExitStatus,
    pub stdout: Output,
    pub stderr: Vec<u8>,
}

/// Runs `command` (stdin closed) to its end, reading at most `max_stdout` bytes of its
/// output (past that it is killed) and the last [`MAX_STDERR`] bytes of its messages,
/// both at once. For commands without a deadline; `deadline::run_bounded` is the same
/// for those with one.
pub(crate) fn collect(command: &mut Command, max_stdout: usize) -> io::Result<Collected> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = match stderr_in_background(child.stderr.take(), MAX_STDERR) {
        Ok(reader) => reader,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let stdout = match child.stdout.take() {
        Some(pipe) => read_head(pipe, max_stdout),
        None => Ok(Output::default()),
    };
    if !matches!(&stdout, Ok(out) if !out.overflowed) {
        let _ = child.kill();
    }
    let status = child.wait();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Collected {
        status: status?,
        stdout: stdout?,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_kept_up_to_its_bound() {
        let out = read_head(&b"0123456789"[..], 10).unwrap();
        assert_eq!(
            (out.bytes.as_slice(), out.overflowed),
            (&b"0123456789"[..], false)
        );
        let out = read_head(&b"0123456789a"[..], 10).unwrap();
        assert_eq!(
            (out.bytes.as_slice(), out.overflowed),
            (&b"0123456789"[..], true)
        );
    }

    #[test]
    fn the_tail_keeps_the_last_bytes_and_says_how_many_went() {
        assert_eq!(read_tail(&b"short"[..], 8), b"short");
        let long: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let tail = read_tail(long.as_slice(), 1000);
        let text = String::from_utf8(tail).unwrap();
        let (note, kept) = text.split_once('\n').unwrap();
        assert_eq!(note, "[99000 earlier bytes of messages left out]");
        assert_eq!(kept.as_bytes(), &long[99_000..]);
    }

    #[test]
    fn a_collected_command_is_stopped_past_its_output_bound() {
        let done = collect(&mut Command::new("yes"), 1 << 20).unwrap();
        assert!(done.stdout.overflowed && !done.status.success());
        assert_eq!(done.stdout.bytes.len(), 1 << 20);
        let script = "head -c 1048576 /dev/zero | tr '\\0' m >&2; echo out; exit 3";
        let done = collect(Command::new("sh").args(["-c", script]), 1 << 20).unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout.bytes, b"out\n");
        assert!(
            done.stderr.len() <= MAX_STDERR + 64,
            "the end of the messages only"
        );
    }
}
