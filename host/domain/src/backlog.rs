//! `.leviathan/backlog.yaml`: the original Leviathan format (`tasks:` list). Unknown
//! fields are kept and scalar ones are passed to executors as parameters.

use crate::paths::RepoPath;
use crate::repofs::{Limit, RepoDir};
use crate::yaml::{self, Fields, InputError};
use serde_norway::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Where the backlog lives inside a target repository.
pub const BACKLOG_PATH: &str = ".leviathan/backlog.yaml";

/// The largest backlog read (it comes from the target, which the host does not trust).
pub const MAX_BACKLOG: Limit = Limit::new(1 << 20, "backlog size limit");

/// [`BACKLOG_PATH`] as a repository path.
pub fn backlog_path() -> RepoPath {
    RepoPath::parse(BACKLOG_PATH).expect("a valid repository path")
}

/// Reads the backlog's text from a repository through a capability: a link at or on
/// the way to `.leviathan/backlog.yaml` is refused (never followed), as is anything
/// but a regular file of at most [`MAX_BACKLOG`] bytes.
pub fn read_text(repo: &Path) -> Result<String, InputError> {
    let file = repo.join(BACKLOG_PATH);
    let dir = RepoDir::open(repo, "a target repository").map_err(|source| InputError::Read {
        file: file.clone(),
        source,
    })?;
    let bytes = dir
        .read(&backlog_path(), MAX_BACKLOG)
        .map_err(|e| InputError::refused(&file, e))?
        .ok_or_else(|| InputError::Read {
            file: file.clone(),
            source: crate::repofs::not_found(),
        })?;
    crate::yaml::utf8_text(&file, bytes, "the backlog")
}

/// One backlog task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub description: String,
    pub scope: String,
    pub priority: Option<String>,
    pub estimated_size: Option<String>,
    pub ready: bool,
    pub status: Option<String>,
    pub dependencies: Vec<String>,
    pub allowed_paths: Vec<String>,
    pub acceptance_criteria: Vec<String>,
    pub labels: Vec<String>,
    /// An explicit executor choice (`name` or `name@version`), if any.
    pub executor: Option<String>,
    /// Fields this version does not interpret, as written.
    pub extra: BTreeMap<String, Value>,
}

impl Task {
    /// Unknown fields that look like a misspelt known one, each with the field it is
    /// likely meant as (`dependecies` → `dependencies`): kept as parameters, they would
    /// otherwise have no effect.
    pub fn misspelt_fields(&self) -> Vec<(String, &'static str)> {
        self.extra
            .keys()
            .filter_map(|k| yaml::near_miss(k, KNOWN).map(|meant| (k.clone(), meant)))
            .collect()
    }

    /// Unknown scalar fields as `(key, text)` pairs, sorted by key.
    pub fn parameters(&self) -> Vec<(String, String)> {
        self.extra
            .iter()
            .filter_map(|(k, v)| yaml::scalar_text(v).map(|t| (k.clone(), t)))
            .collect()
    }
}

/// A parsed backlog.
#[derive(Debug, Clone)]
pub struct Backlog {
    pub source: PathBuf,
    pub tasks: Vec<Task>,
    /// The text parsed and what it parsed to, for [`Backlog::completion_problem`].
    text: String,
    document: Value,
    /// The tasks whose completion the host could not record, worked out once when
    /// first asked.
    completion_problems: std::sync::OnceLock<BTreeMap<String, crate::writeback::WriteBackError>>,
}

const KNOWN: &[&str] = &[
    "id",
    "title",
    "description",
    "scope",
    "priority",
    "estimated_size",
    "ready",
    "status",
    "dependencies",
    "allowed_paths",
    "acceptance_criteria",
    "labels",
    "executor",
];

/// True for ids usable in file and branch names: ASCII letters, digits, `.`, `_`, `-`,
/// starting with a letter or digit, at most 128 characters, and valid inside a git
/// branch name (`git check-ref-format`: no `..`, not ending in `.` or `.lock`), so
/// every attempt's branch `agent/task-exec-attempt-<id>-<8 hex>` is one git accepts.
pub fn valid_task_id(id: &str) -> bool {
    id.len() <= 128
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !id.contains("..")
        && !id.ends_with('.')
        && !id.ends_with(".lock")
}

impl Backlog {
    /// Loads the backlog of the repository at `repo` (see [`read_text`]).
    pub fn load_from_repo(repo: &Path) -> Result<Backlog, InputError> {
        Backlog::from_text(&repo.join(BACKLOG_PATH), &read_text(repo)?)
    }

    /// Parses backlog text read from `file`; an error names the first problem and how
    /// many more there are. Whether each task's completion can be recorded in this
    /// text is asked separately ([`Backlog::completion_problem`]).
    pub fn from_text(file: &Path, text: &str) -> Result<Backlog, InputError> {
        let (backlog, errors) = Backlog::from_text_with_task_errors(file, text)?;
        let mut errors = errors.into_iter();
        let Some(first) = errors.next() else {
            return Ok(backlog);
        };
        // The first problem, and how many follow it.
        Err(match errors.len() {
            0 => first.error,
            more => first.error.noted(&more_problems(more)),
        })
    }

    /// Parses backlog text, keeping going past a task it cannot read: the tasks read,
    /// and every error of the others (each of a task's fields, duplicate ids), in
    /// backlog order; `Err` only when the document itself is not a backlog. For
    /// `backlog validate`, which names every problem at once.
    pub fn from_text_with_task_errors(
        file: &Path,
        text: &str,
    ) -> Result<(Backlog, Vec<TaskError>), InputError> {
        let value = yaml::parse(file, text)?;
        let (mut backlog, errors) = Backlog::from_value(file, &value)?;
        backlog.text = text.to_string();
        backlog.document = value;
        Ok((backlog, errors))
    }

    /// Why the host could not record the completion of task `id` in this backlog as
    /// written (naming the line), or `None` when it can: the write-back is tried on
    /// the text and must read back as that completion alone. The scheduler never
    /// runs a task with a problem, and `backlog validate` names it, so no attempt
    /// does its work only to fail at the write-back. Worked out for every task at
    /// once, when first asked: one parse of all the edits together.
    pub fn completion_problem(&self, id: &str) -> Option<String> {
        self.completion_problems
            .get_or_init(|| crate::writeback::problems(&self.text, &self.document))
            .get(id)
            .map(|e| {
                format!("{e} (the host records a task's completion by editing its lines in place)")
            })
    }

    fn from_value(file: &Path, value: &Value) -> Result<(Backlog, Vec<TaskError>), InputError> {
        let invalid = |message: String| InputError::Invalid {
            file: file.into(),
            context: String::new(),
            message,
        };
        let root = match value {
            Value::Mapping(m) => m,
            other => {
                return Err(invalid(format!(
                    "a backlog must be a mapping with a `tasks:` list, found {}",
                    yaml::describe(other)
                )));
            }
        };
        let tasks_value = match root.get("tasks") {
            None => return Err(invalid("the `tasks:` list is missing".into())),
            Some(Value::Null) => {
                return Ok((
                    Backlog {
                        source: file.into(),
                        tasks: Vec::new(),
                        text: String::new(),
                        document: Value::Null,
                        completion_problems: Default::default(),
                    },
                    Vec::new(),
                ));
            }
            Some(v) => v,
        };
        let items = match tasks_value {
            Value::Sequence(items) => items,
            other => {
                return Err(invalid(format!(
                    "field `tasks`: expected a list, found {}",
                    yaml::describe(other)
                )));
            }
        };
        let mut tasks = Vec::with_capacity(items.len());
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for (index, item) in items.iter().enumerate() {
            let task = match parse_task(file, index, item) {
                Ok(task) => task,
                Err((id, found)) => {
                    // Its id is taken all the same: a later task with it is a duplicate.
                    seen.extend(id.clone());
                    errors.extend(found.into_iter().map(|error| TaskError {
                        index,
                        id: id.clone(),
                        error,
                    }));
                    continue;
                }
            };
            if !seen.insert(task.id.clone()) {
                errors.push(TaskError {
                    index,
                    id: Some(task.id.clone()),
                    error: InputError::Field {
                        file: file.into(),
                        context: format!("task #{} `{}`: ", index + 1, task.id),
                        field: "id".into(),
                        message: "duplicate task id: an earlier task has it".into(),
                    },
                });
                continue;
            }
            tasks.push(task);
        }
        let backlog = Backlog {
            source: file.into(),
            tasks,
            text: String::new(),
            document: Value::Null,
            completion_problems: Default::default(),
        };
        Ok((backlog, errors))
    }

    /// The task with `id`.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// What follows the first problem of a backlog with `more` others.
fn more_problems(more: usize) -> String {
    format!(" (and {more} more; `leviathan-host backlog validate` lists every one)")
}

/// A task of the backlog that could not be read.
#[derive(Debug)]
pub struct TaskError {
    /// Its position in the `tasks:` list, from 0.
    pub index: usize,
    /// Its id, when that much could be read.
    pub id: Option<String>,
    /// What is wrong, naming the file, the task and the field.
    pub error: InputError,
}

/// The task at `index`, or its id (when it could be read) and every error found in it.
fn parse_task(
    file: &Path,
    index: usize,
    item: &Value,
) -> Result<Task, (Option<String>, Vec<InputError>)> {
    let map = match item {
        Value::Mapping(m) => m,
        other => {
            return Err((
                None,
                vec![InputError::Invalid {
                    file: file.into(),
                    context: format!("task #{}: ", index + 1),
                    message: format!("expected a mapping, found {}", yaml::describe(other)),
                }],
            ));
        }
    };
    let id_fields = Fields {
        file,
        context: format!("task #{}: ", index + 1),
        map,
    };
    let unread = |error: InputError| Err((None, vec![error]));
    let id = match id_fields.get("id") {
        None => return unread(id_fields.error("id", "is required")),
        Some(v) => match yaml::scalar_text(v) {
            Some(id) => id,
            None => {
                return unread(id_fields.error(
                    "id",
                    format!("expected a string, found {}", yaml::describe(v)),
                ));
            }
        },
    };
    if !valid_task_id(&id) {
        return unread(id_fields.error(
            "id",
            "is not a valid task id (letters, digits, `.`, `_`, `-`, starting with a letter \
             or digit, without `..`, not ending in `.` or `.lock`; at most 128 characters)",
        ));
    }
    let f = Fields {
        file,
        context: format!("task #{} `{id}`: ", index + 1),
        map,
    };
    let mut errors = Vec::new();
    let mut extra = BTreeMap::new();
    for (k, v) in map {
        match k.as_str() {
            Some(key) if KNOWN.contains(&key) => {}
            Some(key) => {
                extra.insert(key.to_string(), v.clone());
            }
            None => errors.push(InputError::Invalid {
                file: file.into(),
                context: f.context.clone(),
                message: format!("field names must be strings, found {}", yaml::describe(k)),
            }),
        }
    }
    // Every field is read, so all of a task's errors are found at once.
    macro_rules! keep {
        ($read:expr) => {
            keep_error(&mut errors, $read)
        };
    }
    let task = Task {
        title: keep!(f.string("title")),
        description: keep!(f.opt_string("description")).unwrap_or_default(),
        scope: keep!(f.string("scope")),
        priority: keep!(f.opt_scalar("priority")),
        estimated_size: keep!(f.opt_scalar("estimated_size")),
        ready: keep!(f.opt_bool("ready")).unwrap_or(false),
        status: keep!(f.opt_string("status")),
        dependencies: keep!(f.string_list("dependencies")),
        allowed_paths: keep!(f.string_list("allowed_paths")),
        acceptance_criteria: keep!(f.string_list("acceptance_criteria")),
        labels: keep!(f.string_list("labels")),
        executor: keep!(f.opt_string("executor")),
        id,
        extra,
    };
    if errors.is_empty() {
        Ok(task)
    } else {
        Err((Some(task.id), errors))
    }
}

/// `result`'s value, or the type's default with the error added to `errors`.
fn keep_error<T: Default>(errors: &mut Vec<InputError>, result: Result<T, InputError>) -> T {
    result.unwrap_or_else(|e| {
        errors.push(e);
        T::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Backlog, InputError> {
        Backlog::from_text(Path::new(".leviathan/backlog.yaml"), text)
    }

    const GOOD: &str = r#"
# comment
tasks:
  - id: docs-guide
    title: Contributor guide
    description: How to contribute.
    scope: docs
    priority: high
    estimated_size: small
    ready: true
    status: pending
    dependencies: []
    allowed_paths: [docs/]
    acceptance_criteria:
      - Explains setup
      - 42
    labels: [docs]
    owner: platform-team
    effort: 3
    notes: {nested: true}
  - id: tests-api
    title: API tests
    scope: tests
"#;

    #[test]
    fn ready_takes_yaml_1_1_booleans_as_the_original_read_them() {
        let ready = |word: &str| {
            parse(&format!(
                "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready: {word}\n"
            ))
            .map(|b| b.tasks[0].ready)
            .map_err(|e| e.to_string())
        };
        for (word, value) in [("yes", true), ("On", true), ("NO", false), ("off", false)] {
            assert_eq!(ready(word), Ok(value), "{word}");
        }
        for word in ["\"true\"", "y", "n", "yes please", "1", "oN"] {
            let err = ready(word).expect_err(word);
            assert!(err.contains("field `ready`"), "{word}: {err}");
        }
    }

    #[test]
    fn a_backlog_that_is_not_utf8_is_named_with_the_line_and_column_of_its_first_bad_byte() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join(".leviathan")).unwrap();
        let mut bytes = b"tasks:\n  - id: a\n    title: caf".to_vec();
        bytes.extend_from_slice(&[0xe9, b'\n', 0xff]);
        std::fs::write(repo.path().join(BACKLOG_PATH), &bytes).unwrap();
        let err = read_text(repo.path()).unwrap_err().to_string();
        assert!(err.contains(BACKLOG_PATH), "{err}");
        assert!(
            err.contains("the backlog is not UTF-8 (line 3, column 15)"),
            "{err}"
        );
    }

    #[test]
    fn parses_the_original_format() {
        let b = parse(GOOD).unwrap();
        assert_eq!(b.tasks.len(), 2);
        let t = &b.tasks[0];
        assert_eq!(t.id, "docs-guide");
        assert!(t.ready);
        assert_eq!(t.acceptance_criteria, vec!["Explains setup", "42"]);
        assert_eq!(
            t.parameters(),
            vec![
                ("effort".into(), "3".into()),
                ("owner".into(), "platform-team".into())
            ]
        );
        assert!(t.extra.contains_key("notes"));
        let t2 = &b.tasks[1];
        assert!(!t2.ready);
        assert!(t2.allowed_paths.is_empty());
    }

    #[test]
    fn missing_required_field_names_task_and_field() {
        let err = parse("tasks:\n  - id: a-1\n    scope: docs\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(".leviathan/backlog.yaml"), "{err}");
        assert!(err.contains("task #1 `a-1`"), "{err}");
        assert!(err.contains("field `title`: is required"), "{err}");
    }

    #[test]
    fn wrong_type_names_task_and_field() {
        let err =
            parse("tasks:\n  - id: a-1\n    title: t\n    scope: docs\n    ready: yes please\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("field `ready`") && err.contains("a-1"),
            "{err}"
        );
        let err = parse("tasks:\n  - {id: a, title: t, scope: docs, allowed_paths: docs/}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `allowed_paths`: expected a list"),
            "{err}"
        );
        let err = parse("tasks:\n  - {id: a, title: t, scope: docs, labels: [[x]]}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("item 1 must be a string"), "{err}");
    }

    #[test]
    fn malformed_yaml_reports_a_line() {
        let err = parse("tasks:\n  - id: a\n   title: [\n").unwrap_err();
        assert!(matches!(err, InputError::Syntax { .. }));
        assert!(err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn structural_errors() {
        assert!(
            parse("- id: a\n")
                .unwrap_err()
                .to_string()
                .contains("mapping")
        );
        assert!(
            parse("other: 1\n")
                .unwrap_err()
                .to_string()
                .contains("`tasks:`")
        );
        assert!(
            parse("tasks: 3\n")
                .unwrap_err()
                .to_string()
                .contains("expected a list")
        );
        let dup =
            "tasks:\n  - {id: a, title: t, scope: docs}\n  - {id: a, title: u, scope: docs}\n";
        assert!(
            parse(dup)
                .unwrap_err()
                .to_string()
                .contains("duplicate task id")
        );
        let bad_id = "tasks:\n  - {id: ../x, title: t, scope: docs}\n";
        assert!(
            parse(bad_id)
                .unwrap_err()
                .to_string()
                .contains("not a valid task id")
        );
        assert_eq!(parse("tasks:\n").unwrap().tasks.len(), 0);
    }

    /// Every id the backlog accepts gives a branch `git check-ref-format` accepts, over
    /// a generated set of ids built from the allowed characters.
    #[test]
    fn accepted_ids_make_branch_names_git_accepts() {
        let alphabet = ['a', 'Z', '0', '.', '_', '-'];
        let mut ids = vec![
            "a..b".to_string(),
            "x.lock".into(),
            "end.".into(),
            "ok.locks".into(),
        ];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    ids.push(format!("{a}{b}{c}"));
                    ids.push(format!("k{a}{b}{c}"));
                }
            }
        }
        let mut accepted = 0;
        for id in &ids {
            let branch = format!("agent/task-exec-attempt-{id}-0badcafe");
            let git_ok = std::process::Command::new("git")
                .args(["check-ref-format", "--branch", &branch])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if valid_task_id(id) {
                accepted += 1;
                assert!(git_ok, "`{id}` is accepted but git refuses {branch}");
            }
        }
        assert!(accepted > 100, "the generator must exercise accepted ids");
        for refused in ["a..b", "x.lock", "end.", ".x", "-x"] {
            assert!(!valid_task_id(refused), "{refused}");
        }
        let err = parse("tasks:\n  - {id: a..b, title: t, scope: docs}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not a valid task id") && !err.contains("a..b"),
            "{err}"
        );
    }
}
