//! A deliberately misbehaving executor, built by the test suite to attack the sandbox.
//! The task id picks the attack. When an attack is refused by the sandbox the guest
//! returns `denied`; when it gets through, it reports success (and the test fails if
//! the host lets that through). It only exists as a wasm32 component.
#![cfg(target_arch = "wasm32")]

use leviathan_executor_sdk::{ExecError, Executor, PluginInfo, Report, Task, Workspace};
use std::fmt::Write as _;
use std::fs;

/// The hostile executor.
pub struct HostileGuest;

impl Executor for HostileGuest {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile-guest".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            scopes: vec!["hostile".into()],
            summary: "Attacks the sandbox (tests only)".into(),
        }
    }

    fn execute(task: &Task, _workspace: &Workspace) -> Result<Report, ExecError> {
        match task.id.as_str() {
            "loop" => spin(),
            "grow" => grow(),
            "recurse" => recurse(0).map(|depth| Report {
                files: Vec::new(),
                summary: format!("recursed {depth} deep"),
            }),
            "outside" => attempts(&[
                Attempt::Write("/repo/README.md"),
                Attempt::Write("/out/src/evil.rs"),
                Attempt::Write("/evil.txt"),
                Attempt::Write("/out/docs/../../evil.txt"),
                Attempt::CreateNew("/out/src/evil.rs"),
                Attempt::CreateNew("/out/docs/../../evil.txt"),
            ]),
            "sibling" => write_report("/out/docs/other.md", b"not allowed\n"),
            "unmounted" => Workspace::sandbox()
                .write_if_changed("src/evil.rs", b"escaped\n")
                .map(|_| Report {
                    files: vec!["src/evil.rs".into()],
                    summary: "wrote outside the mounts".into(),
                }),
            "probe" => probe(),
            "dotdot" => attempts(&[
                Attempt::Read("/out/docs/../../../../etc/passwd"),
                Attempt::Read("/repo/../../../../etc/passwd"),
                Attempt::Write("/out/docs/../../../escape.md"),
                Attempt::Write("/repo/../escape.md"),
                Attempt::CreateNew("/out/docs/../../../escape.md"),
                Attempt::CreateNew("/repo/../escape.md"),
                Attempt::CreateNew("/repo/docs/new.md"),
            ]),
            "git" => attempts(&[
                Attempt::Read("/repo/.git/config"),
                Attempt::Read("/repo/.git/HEAD"),
            ]),
            "symlink" => symlink(),
            "peek" => peek(),
            "flood" => flood(),
            "entropy" => entropy(),
            "trap" => panic!("hostile guest panics on purpose"),
            "exit" => std::process::exit(7),
            other => Err(ExecError::InvalidTask(format!("unknown attack `{other}`"))),
        }
    }
}

fn spin() -> Result<Report, ExecError> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn grow() -> Result<Report, ExecError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        block[0] = hoard.len() as u8;
        hoard.push(std::hint::black_box(block));
    }
}

/// Recursion without end, each frame holding 4 KiB on the stack: overruns any stack.
#[allow(
    unconditional_recursion,
    reason = "the attack: it must run out of stack"
)]
fn recurse(depth: u64) -> Result<u64, ExecError> {
    let frame = std::hint::black_box([depth as u8; 4096]);
    let deeper = recurse(depth + 1)?;
    Ok(deeper + u64::from(std::hint::black_box(frame)[4095]))
}

enum Attempt {
    Read(&'static str),
    Write(&'static str),
    /// An exclusive create (`open-at` with `create` and `exclusive`).
    CreateNew(&'static str),
}

/// Tries every attempt; any that succeeds is reported as an escape (Ok), otherwise
/// the refusals are returned as `denied`.
fn attempts(list: &[Attempt]) -> Result<Report, ExecError> {
    let mut escaped = Vec::new();
    let mut refused = String::new();
    for attempt in list {
        let (what, result) = match attempt {
            Attempt::Read(p) => (format!("read {p}"), fs::read(p).map(|_| ())),
            Attempt::Write(p) => (format!("write {p}"), fs::write(p, b"escaped\n")),
            Attempt::CreateNew(p) => (
                format!("create {p}"),
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(p)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, b"escaped\n")),
            ),
        };
        match result {
            Ok(()) => escaped.push(what),
            Err(e) => {
                let _ = write!(refused, "{what}: {e}; ");
            }
        }
    }
    if escaped.is_empty() {
        Err(ExecError::Denied(format!(
            "every attempt was refused: {refused}"
        )))
    } else {
        let _ = fs::write("/out/docs/escaped.md", escaped.join("\n"));
        Ok(Report {
            files: vec!["docs/escaped.md".into()],
            summary: format!("ESCAPED: {}", escaped.join(", ")),
        })
    }
}

/// Reports which files of the repository snapshot it can see (what the read scope
/// staged), in `docs/peek.md`.
fn peek() -> Result<Report, ExecError> {
    let mut seen = String::new();
    for path in ["README.md", "src/secret.rs", "docs/index.md"] {
        let state = match fs::read(format!("/repo/{path}")) {
            Ok(_) => "visible",
            Err(_) => "absent",
        };
        let _ = writeln!(seen, "{path}: {state}");
    }
    write_report("/out/docs/peek.md", seen.as_bytes())
}

/// With only `docs/guide.md` allowed, tries every kind of change beside it, then
/// writes the allowed file and reports how each try ended (a try that got through
/// makes the summary say ESCAPED).
fn probe() -> Result<Report, ExecError> {
    let tries: [(&str, std::io::Result<()>); 4] = [
        ("write", fs::write("/out/docs/other.md", b"beside\n")),
        ("mkdir", fs::create_dir("/out/docs/sub")),
        (
            "hard-link",
            fs::hard_link("/out/docs/index.md", "/out/docs/link.md"),
        ),
        ("rename", {
            fs::write("/out/docs/guide.md", b"draft\n")
                .and_then(|()| fs::rename("/out/docs/guide.md", "/out/docs/moved.md"))
        }),
    ];
    let mut summary = String::new();
    for (what, result) in tries {
        match result {
            Ok(()) => {
                let _ = write!(summary, "{what}: ESCAPED; ");
            }
            Err(e) => {
                let _ = write!(summary, "{what}: {:?}; ", e.kind());
            }
        }
    }
    fs::write("/out/docs/guide.md", summary.as_bytes())
        .map_err(|e| ExecError::Internal(format!("the allowed file: {e}")))?;
    Ok(Report {
        files: vec!["docs/guide.md".into()],
        summary,
    })
}

fn write_report(path: &str, bytes: &[u8]) -> Result<Report, ExecError> {
    fs::write(path, bytes).map_err(|e| ExecError::Denied(format!("write {path}: {e}")))?;
    Ok(Report {
        files: vec![path.trim_start_matches("/out/").into()],
        summary: format!("wrote {path}"),
    })
}

fn symlink() -> Result<Report, ExecError> {
    use wasi::filesystem::preopens::get_directories;
    let dirs = get_directories();
    let Some((docs, _)) = dirs.iter().find(|(_, name)| name == "/out/docs") else {
        return Err(ExecError::Internal("no /out/docs preopen".into()));
    };
    let mut made = Vec::new();
    let mut refused = String::new();
    for (target, link) in [
        ("/etc/passwd", "abs-link.md"),
        ("../../../../etc/passwd", "rel-link.md"),
        ("index.md", "inside-link.md"),
    ] {
        match docs.symlink_at(target, link) {
            Ok(()) => made.push(link),
            Err(e) => {
                let _ = write!(refused, "{link} -> {target}: {e:?}; ");
            }
        }
    }
    if made.is_empty() {
        return Err(ExecError::Denied(format!(
            "every symlink was refused: {refused}"
        )));
    }
    Ok(Report {
        files: made.iter().map(|l| format!("docs/{l}")).collect(),
        summary: "made symlinks".into(),
    })
}

fn flood() -> Result<Report, ExecError> {
    let mut files = Vec::new();
    for i in 0..10_000 {
        let path = format!("/out/docs/flood-{i:05}.md");
        fs::write(&path, format!("{i}\n"))
            .map_err(|e| ExecError::Internal(format!("{path}: {e}")))?;
        files.push(path);
    }
    Ok(Report {
        files,
        summary: "flooded".into(),
    })
}

/// Reads clocks, randomness, environment and arguments twice and writes what it saw.
fn entropy() -> Result<Report, ExecError> {
    let mut text = String::new();
    for round in 1..=2 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mono = wasi::clocks::monotonic_clock::now();
        let secure = wasi::random::random::get_random_bytes(16);
        let insecure = wasi::random::insecure::get_insecure_random_bytes(16);
        let seed = wasi::random::insecure_seed::insecure_seed();
        let hash_seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u8(1);
            h.finish()
        };
        let _ = writeln!(text, "round {round}");
        let _ = writeln!(text, "wall-clock-ns {wall}");
        let _ = writeln!(text, "monotonic-ns {mono}");
        let _ = writeln!(text, "random {}", hex(&secure));
        let _ = writeln!(text, "insecure {}", hex(&insecure));
        let _ = writeln!(text, "insecure-seed {:x} {:x}", seed.0, seed.1);
        let _ = writeln!(text, "hashmap-seed {hash_seed:x}");
        let _ = writeln!(text, "env-vars {}", std::env::vars_os().count());
        let _ = writeln!(text, "args {}", std::env::args_os().count());
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    write_report("/out/docs/entropy.md", text.as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

leviathan_executor_sdk::export_executor!(HostileGuest);
