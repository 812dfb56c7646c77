//! `leviathan-host backlog validate`: a target's backlog checked the way the scheduler
//! would read it, every problem named by file, task and field; the exit status is for
//! a target repository's own CI.

use leviathan_domain::backlog::{BACKLOG_PATH, Backlog, Task, TaskError, read_text};
use leviathan_domain::policy::{Policy, REPO_POLICY_PATH};
use leviathan_domain::registry::{Registry, RegistryError};
use leviathan_domain::yaml::InputError;
use leviathan_sandbox::exec::checked_allowed_paths;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One problem of a backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// The task's id, when the problem is a task's.
    pub task: Option<String>,
    /// The field, when one is to blame.
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(task) = &self.task {
            write!(f, "task `{task}`: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The dependency cycles of the backlog, each once, as the ids along it (the first
/// id repeated at the end), starting from its task earliest in backlog order.
pub fn cycles(backlog: &Backlog) -> Vec<Vec<String>> {
    let index: HashMap<&str, usize> = backlog
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state = vec![0u8; backlog.tasks.len()];
    let mut found = Vec::new();
    fn visit(
        at: usize,
        tasks: &[Task],
        index: &HashMap<&str, usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
        found: &mut Vec<Vec<String>>,
    ) {
        state[at] = 1;
        path.push(at);
        for dep in &tasks[at].dependencies {
            let Some(&next) = index.get(dep.as_str()) else {
                continue;
            };
            match state[next] {
                0 => visit(next, tasks, index, state, path, found),
                1 => {
                    let from = path.iter().position(|&p| p == next).unwrap_or(0);
                    let mut ids: Vec<String> =
                        path[from..].iter().map(|&i| tasks[i].id.clone()).collect();
                    ids.push(tasks[next].id.clone());
                    found.push(ids);
                }
                _ => {}
            }
        }
        path.pop();
        state[at] = 2;
    }
    for start in 0..backlog.tasks.len() {
        if state[start] == 0 {
            visit(
                start,
                &backlog.tasks,
                &index,
                &mut state,
                &mut Vec::new(),
                &mut found,
            );
        }
    }
    found
}

/// Every problem of `backlog`'s tasks under `policy` and the plugins of `registry`
/// (without one, which executor runs each task is not checked). `unread` are the ids
/// of tasks the backlog holds but could not read (reported on their own): a
/// dependency on one of them is not a missing task.
pub fn problems(
    backlog: &Backlog,
    unread: &[&str],
    policy: &Policy,
    registry: Option<&Registry>,
) -> Vec<Problem> {
    let file = backlog.source.clone();
    let problem = |task: &Task, field: Option<&str>, message: String| Problem {
        file: file.clone(),
        task: Some(task.id.clone()),
        field: field.map(str::to_string),
        message,
    };
    let ids: HashMap<&str, &Task> = backlog.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut found = Vec::new();
    for task in &backlog.tasks {
        for (key, meant) in task.misspelt_fields() {
            found.push(problem(task, Some(&key), misspelt(meant)));
        }
        for dep in &task.dependencies {
            if !ids.contains_key(dep.as_str()) && !unread.contains(&dep.as_str()) {
                found.push(problem(
                    task,
                    Some("dependencies"),
                    format!("`{dep}` is not a task of this backlog"),
                ));
            }
        }
        if let Err(e) = checked_allowed_paths(&backlog.source, task, policy) {
            // The message names the file, task and field itself.
            let located = format!(
                "{}: task `{}`: field `allowed_paths`: ",
                backlog.source.display(),
                task.id
            );
            let message = e.message.strip_prefix(&located).unwrap_or(&e.message);
            found.push(problem(task, Some("allowed_paths"), message.to_string()));
        }
        if let Some(Err(e)) = registry.map(|r| r.route(task)) {
            let field = if task.executor.is_some() {
                "executor"
            } else {
                "scope"
            };
            found.push(problem(task, Some(field), e.to_string()));
        }
    }
    // A task not yet completed must be one whose completion the host can record.
    for task in &backlog.tasks {
        if task.status.as_deref() != Some("completed")
            && let Some(why) = backlog.completion_problem(&task.id)
        {
            found.push(problem(task, None, why));
        }
    }
    for cycle in cycles(backlog) {
        if let Some(task) = ids.get(cycle[0].as_str()) {
            found.push(problem(
                task,
                Some("dependencies"),
                format!(
                    "a dependency cycle: {}; none of these tasks can ever run",
                    cycle.join(" → ")
                ),
            ));
        }
    }
    found
}

/// The message for an unknown field that is likely `meant`.
fn misspelt(meant: &str) -> String {
    format!(
        "not a field the host reads: did you mean `{meant}`? (unknown fields are kept as written, so this one has no effect)"
    )
}

/// `message` without a leading `file: ` (input errors already name their file, and a
/// problem prints it once).
fn unprefixed(file: &Path, message: String) -> String {
    match message.strip_prefix(&format!("{}: ", file.display())) {
        Some(rest) => rest.to_string(),
        None => message,
    }
}

/// What `backlog validate` is asked.
pub struct ValidateArgs {
    pub repo: PathBuf,
    pub policy: Option<PathBuf>,
    pub plugin_dir: Option<PathBuf>,
    pub json: bool,
}

/// `backlog validate`: prints each problem; exit 0 when there is none, 1 otherwise.
pub fn validate(args: &ValidateArgs) -> i32 {
    let file = args.repo.join(BACKLOG_PATH);
    let Report {
        tasks,
        policy_file,
        problems,
    } = check(args);
    let policy = policy_file.map_or_else(
        || "the built-in policies/dev.yaml".to_string(),
        |p| p.display().to_string(),
    );
    if args.json {
        let list: Vec<_> = problems
            .iter()
            .map(
                |p| json!({"file": p.file, "task": p.task, "field": p.field, "message": p.message}),
            )
            .collect();
        println!(
            "{}",
            json!({"file": file, "policy": policy, "tasks": tasks, "ok": problems.is_empty(), "problems": list})
        );
    } else if problems.is_empty() {
        println!("{}: ok, {tasks} task(s), under {policy}", file.display());
    } else {
        for p in &problems {
            eprintln!("{p}");
        }
        eprintln!("{} problem(s)", problems.len());
    }
    i32::from(!problems.is_empty())
}

/// What `backlog validate` found.
struct Report {
    /// Tasks in the backlog's list, read or not.
    tasks: usize,
    /// The policy file the backlog was checked under (`None`: the built-in default).
    policy_file: Option<PathBuf>,
    /// The policy's and the registry's problems, then the backlog's in backlog order.
    problems: Vec<Problem>,
}

/// Checks the backlog of `args.repo` under its policy.
fn check(args: &ValidateArgs) -> Report {
    let mut report = Report {
        tasks: 0,
        policy_file: None,
        problems: Vec::new(),
    };
    if let Err(problem) = check_into(args, &mut report) {
        report.problems.insert(0, problem);
    }
    report
}

/// Fills `report`; `Err` is a problem that stopped the check (an unreadable file).
fn check_into(args: &ValidateArgs, report: &mut Report) -> Result<(), Problem> {
    // The input errors already name the file, the task and the field.
    let whole = |file: &Path, message: String| Problem {
        file: file.to_path_buf(),
        task: None,
        field: None,
        message: unprefixed(file, message),
    };
    // The policy: the one named, else the repository's own (what a discovered target
    // runs under), else the built-in default.
    let repo_policy = args.repo.join(REPO_POLICY_PATH);
    let policy = match &args.policy {
        Some(file) => {
            report.policy_file = Some(file.clone());
            Policy::load(file).map_err(|e| policy_problem(file, e))?
        }
        None => match Policy::load_from_repo(&args.repo) {
            Ok(Some(policy)) => {
                report.policy_file = Some(repo_policy);
                policy
            }
            Ok(None) => Policy::default_policy(),
            Err(e) => {
                report.policy_file = Some(repo_policy.clone());
                return Err(policy_problem(&repo_policy, e));
            }
        },
    };
    if let Some(file) = &report.policy_file {
        report.problems.extend(
            policy
                .misspelt_fields()
                .into_iter()
                .map(|(key, meant)| Problem {
                    file: file.clone(),
                    task: None,
                    field: Some(key),
                    message: misspelt(meant),
                }),
        );
    }
    let backlog_file = args.repo.join(BACKLOG_PATH);
    let text = read_text(&args.repo).map_err(|e| whole(&backlog_file, e.to_string()))?;
    let (backlog, unread) = Backlog::from_text_with_task_errors(&backlog_file, &text)
        .map_err(|e| whole(&backlog_file, e.to_string()))?;
    let dir = args
        .plugin_dir
        .clone()
        .unwrap_or_else(Registry::default_dir);
    // Without a registry the rest is still checked; only the executors are not.
    let registry = match Registry::scan_with_policy(&dir, &policy.plugins) {
        Ok(mut registry) => {
            registry.reject_contested();
            Some(registry)
        }
        Err(e) => {
            let why = match e {
                RegistryError::Unreadable { message, .. } => message,
                other => other.to_string(),
            };
            report.problems.push(whole(
                &dir,
                format!("cannot read the plugin registry ({why}), so no task's executor was checked (--plugin-dir names it)"),
            ));
            None
        }
    };
    // Where each task stands in the list: the tasks read fill the places no error took.
    let unread_places: BTreeSet<usize> = unread.iter().map(|e| e.index).collect();
    report.tasks = backlog.tasks.len() + unread_places.len();
    let mut place = HashMap::new();
    let read_places = (0..report.tasks).filter(|i| !unread_places.contains(i));
    for (task, index) in backlog.tasks.iter().zip(read_places) {
        place.entry(task.id.clone()).or_insert(index);
    }
    let unread_ids: Vec<&str> = unread.iter().filter_map(|e| e.id.as_deref()).collect();
    let mut found: Vec<(Option<usize>, Problem)> = unread
        .iter()
        .map(|e| (Some(e.index), unread_problem(&backlog_file, e)))
        .collect();
    found.extend(
        problems(&backlog, &unread_ids, &policy, registry.as_ref())
            .into_iter()
            .map(|p| (p.task.as_ref().and_then(|t| place.get(t).copied()), p)),
    );
    // Backlog order, then the order they were found in.
    found.sort_by_key(|(index, _)| *index);
    report.problems.extend(found.into_iter().map(|(_, p)| p));
    Ok(())
}

/// The problem of a policy the host could not read, by field where one is to blame
/// (a nested one as `plugins.trusted_keys`).
fn policy_problem(file: &Path, error: InputError) -> Problem {
    let (field, message) = match error {
        InputError::Field {
            context,
            field,
            message,
            ..
        } => {
            let path = context
                .split(": ")
                .filter(|part| !part.is_empty())
                .chain([field.as_str()])
                .collect::<Vec<_>>()
                .join(".");
            (Some(path), message)
        }
        other => (None, unprefixed(file, other.to_string())),
    };
    Problem {
        file: file.to_path_buf(),
        task: None,
        field,
        message,
    }
}

/// The problem of a task the backlog could not read, by task and field where known,
/// and by its place in the list.
fn unread_problem(file: &Path, unread: &TaskError) -> Problem {
    let (field, message) = match &unread.error {
        InputError::Field { field, message, .. } => (Some(field.clone()), message.clone()),
        InputError::Invalid { message, .. } => (None, message.clone()),
        other => (None, unprefixed(file, other.to_string())),
    };
    Problem {
        file: file.to_path_buf(),
        task: unread.id.clone(),
        field,
        message: format!("{message} (task #{} in the list)", unread.index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(text: &str) -> Backlog {
        Backlog::from_text(Path::new(".leviathan/backlog.yaml"), text).unwrap()
    }

    #[test]
    fn each_cycle_is_found_once_with_its_path() {
        let mut text = String::from("tasks:\n");
        for (id, dep) in [("a", "b"), ("b", "c"), ("c", "a"), ("d", "d"), ("e", "a")] {
            text.push_str(&format!(
                "  - id: {id}\n    title: T\n    scope: docs\n    ready: true\n    dependencies: [{dep}]\n"
            ));
        }
        let b = backlog(&text);
        assert_eq!(
            cycles(&b),
            vec![
                vec!["a".to_string(), "b".into(), "c".into(), "a".into()],
                vec!["d".to_string(), "d".into()],
            ]
        );
    }
}
