//! The docs executor writes, in the sandbox, exactly the bytes its own crate renders
//! natively: over generated tasks from a few bytes to the backlog's 1 MiB limit, so
//! that what differs between the two builds (the guest's run-long arena allocator,
//! the SDK's direct `wasi:filesystem` writes, the task's lowering) never shows in
//! what is written.

use leviathan_domain::backlog::Task;
use leviathan_domain::paths::RepoPath;
use leviathan_domain::policy::Policy;
use leviathan_domain::registry::Registry;
use leviathan_sandbox::exec::run_seed;
use leviathan_sandbox::{Mount, RunRequest, plugins, stage};

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Words and gaps of every awkward kind, `words` of them.
    fn text(&mut self, words: usize) -> String {
        const WORDS: &[&str] = &[
            "Template",
            "pr",
            "PULL",
            "request",
            "rules",
            "Runbook",
            "ß",
            "ǅungla",
            "ﬁle",
            "ΣΊΣΥΦΟΣ",
            "İstanbul",
            "\u{212a}elvin",
            "x",
            "0",
            "criterion",
            "docs",
            "ﾃｽﾄ",
        ];
        const GAPS: &[&str] = &[
            " ", " ", " ", "  ", "\n", "\t", "\u{85}", "\u{2028}", " - ", "/",
        ];
        let mut text = String::new();
        for i in 0..words {
            if i > 0 || self.below(4) == 0 {
                text.push_str(GAPS[self.below(GAPS.len())]);
            }
            text.push_str(WORDS[self.below(WORDS.len())]);
        }
        text
    }

    /// A task whose description has `words` words and which lists `criteria`
    /// acceptance criteria of 1 to 12 words.
    fn task(&mut self, n: usize, words: usize, criteria: usize) -> Task {
        let title_words = 1 + self.below(8);
        let mut task = Task {
            id: format!("task-{n}"),
            title: self.text(title_words),
            description: self.text(words),
            scope: "docs".into(),
            ready: true,
            allowed_paths: vec!["docs/".into()],
            ..Task::default()
        };
        for _ in 0..criteria {
            let w = 1 + self.below(12);
            task.acceptance_criteria.push(self.text(w));
        }
        if self.below(2) == 0 {
            task.priority = Some(self.text(1));
        }
        for _ in 0..self.below(3) {
            task.labels.push(self.text(1));
            task.dependencies.push(format!("dep-{}", self.below(100)));
        }
        task
    }
}

/// The same task in the SDK's form, for the native build.
fn sdk_task(task: &Task) -> leviathan_executor_sdk::Task {
    leviathan_executor_sdk::Task {
        id: task.id.clone(),
        title: task.title.clone(),
        description: task.description.clone(),
        scope: task.scope.clone(),
        priority: task.priority.clone(),
        estimated_size: task.estimated_size.clone(),
        allowed_paths: task.allowed_paths.clone(),
        acceptance_criteria: task.acceptance_criteria.clone(),
        labels: task.labels.clone(),
        dependencies: task.dependencies.clone(),
        parameters: task.parameters(),
    }
}

#[test]
fn the_docs_executor_writes_in_the_sandbox_what_it_renders_natively() {
    let registry = Registry::scan(leviathan_tests::registry()).expect("test registry");
    let entry = registry
        .entries
        .iter()
        .find(|e| e.manifest.name == "docs-executor")
        .expect("docs executor installed");
    let sandbox = leviathan_tests::sandbox();
    let component = plugins::load_entry(entry, sandbox).expect("docs executor loads");
    let worktree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(worktree.path().join("docs")).unwrap();
    let policy = Policy::default_policy();
    let allowed = vec![RepoPath::parse("docs/").unwrap()];

    let mut generator = Gen(0x9e37_79b9_7f4a_7c15);
    // Small tasks, then larger ones, then one near the backlog's limit (1 MiB of
    // text): the guest's allocations cross many of its arena's chunks.
    let mut shapes: Vec<(usize, usize)> = (0..200)
        .map(|_| (generator.below(12), generator.below(6)))
        .collect();
    shapes.extend((0..20).map(|_| (generator.below(400), generator.below(100))));
    shapes.extend([(4_000, 1_000), (60_000, 12_000)]);
    let last = shapes.len() - 1;
    for (n, &(words, criteria)) in shapes.iter().enumerate() {
        let task = generator.task(n, words, criteria);
        let staged = stage::prepare(worktree.path(), &allowed, &[], &policy.staging).unwrap();
        let request = RunRequest {
            task: task.clone(),
            read_only: vec![Mount {
                guest: "/repo".into(),
                host: staged.repo.clone(),
            }],
            read_write: staged.mounts.clone(),
            write_root: Some(staged.write_root()),
            allowed: allowed.clone(),
            seed: run_seed(&task, None),
            limits: policy.limits.clone(),
            timeout: policy.attempt_timeout,
        };
        let outcome = sandbox.run(&component, &request);
        let report = outcome
            .result
            .unwrap_or_else(|e| panic!("task {n} fails in the sandbox: {e:?}"));
        let native_task = sdk_task(&task);
        let path = docs_executor::output_path(&native_task).unwrap();
        assert_eq!(report.files, vec![path.clone()], "task {n}");
        let written = std::fs::read(staged.out.join(&path)).unwrap();
        let rendered = docs_executor::render(&native_task, &path);
        assert!(
            written == rendered.as_bytes(),
            "task {n}: the sandbox wrote {} bytes, natively {} (first difference at byte {:?})",
            written.len(),
            rendered.len(),
            written
                .iter()
                .zip(rendered.as_bytes())
                .position(|(a, b)| a != b)
        );
        if n == last {
            let input = native_task.description.len()
                + native_task
                    .acceptance_criteria
                    .iter()
                    .map(String::len)
                    .sum::<usize>();
            assert!(
                (500_000..=(1 << 20)).contains(&input),
                "the last task is near the backlog's limit: {input} bytes"
            );
            // Memory that is never handed back stays in proportion to the task.
            let peak = outcome.stats.memory_peak;
            eprintln!("{input}-byte task: {peak} bytes of guest memory");
            assert!(
                peak < 16 * input as u64,
                "a {input}-byte task used {peak} bytes of guest memory"
            );
        }
    }
}
