//! `leviathan-host backlog validate`: a target's backlog checked the way the scheduler
//! would read it, every problem named by file, task and field; the exit status is for
//! a target repository's own CI.

use leviathan_domain::backlog::{BACKLOG_PATH, Backlog, Task};
use leviathan_domain::policy::{Policy, REPO_POLICY_PATH};
use leviathan_domain::registry::Registry;
use leviathan_sandbox::exec::checked_allowed_paths;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
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

/// Every problem of `backlog` under `policy` and the plugins of `registry`.
pub fn problems(backlog: &Backlog, policy: &Policy, registry: &Registry) -> Vec<Problem> {
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
            if !ids.contains_key(dep.as_str()) {
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
        if let Err(e) = registry.route(task) {
            let field = if task.extra.contains_key("executor") {
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
    let checked = check(args);
    let (tasks, policy, problems) = match checked {
        Ok(done) => done,
        Err(problem) => (0, None, vec![problem]),
    };
    let policy = policy.map_or_else(
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

/// The backlog's task count, the policy file it was checked under (`None`: the
/// built-in default) and its problems; `Err` when it could not be checked at all.
fn check(args: &ValidateArgs) -> Result<(usize, Option<PathBuf>, Vec<Problem>), Problem> {
    // The input errors already name the file, the task and the field.
    let whole = |file: &Path, message: String| Problem {
        file: file.to_path_buf(),
        task: None,
        field: None,
        message: unprefixed(file, message),
    };
    let backlog_file = args.repo.join(BACKLOG_PATH);
    let backlog =
        Backlog::load_from_repo(&args.repo).map_err(|e| whole(&backlog_file, e.to_string()))?;
    // The policy: the one named, else the repository's own (what a discovered target
    // runs under), else the built-in default.
    let repo_policy = args.repo.join(REPO_POLICY_PATH);
    let (policy, policy_file) = match &args.policy {
        Some(file) => (
            Policy::load(file).map_err(|e| whole(file, e.to_string()))?,
            Some(file.clone()),
        ),
        None => match Policy::load_from_repo(&args.repo)
            .map_err(|e| whole(&repo_policy, e.to_string()))?
        {
            Some(policy) => (policy, Some(repo_policy)),
            None => (Policy::default_policy(), None),
        },
    };
    let policy_problems = policy_file.iter().flat_map(|file| {
        policy
            .misspelt_fields()
            .into_iter()
            .map(move |(key, meant)| Problem {
                file: file.clone(),
                task: None,
                field: Some(key),
                message: misspelt(meant),
            })
    });
    let dir = args
        .plugin_dir
        .clone()
        .unwrap_or_else(Registry::default_dir);
    let mut registry = Registry::scan_with_policy(&dir, &policy.plugins)
        .map_err(|e| whole(&dir, e.to_string()))?;
    registry.reject_contested();
    let mut found: Vec<Problem> = policy_problems.collect();
    found.extend(problems(&backlog, &policy, &registry));
    // Backlog order, then the order they were found in.
    let order: BTreeMap<&str, usize> = backlog
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    found.sort_by_key(|p| p.task.as_deref().and_then(|t| order.get(t).copied()));
    Ok((backlog.tasks.len(), policy_file, found))
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
