//! Determinism: the same task on the same repository state gives the same bytes,
//! whatever the guest reads from clocks, randomness or the environment.

use leviathan_tests::{TestRepo, backlog_with};

fn entropy_on_fresh_repo(extra: &[(&str, &str)]) -> (TestRepo, String, String) {
    let repo = TestRepo::new(&backlog_with("entropy", "hostile", &["docs/"], &[]), extra);
    let report = repo.exec("entropy").expect("entropy guest runs");
    let text = repo.read("docs/entropy.md");
    (repo, text, report.digest)
}

fn field<'a>(text: &'a str, round: usize, key: &str) -> &'a str {
    let block = text.split("round ").nth(round).expect("round present");
    block
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("{key} in round {round}: {text}"))
}

#[test]
fn clocks_and_randomness_are_fixed_by_task_and_head() {
    let (_a, first, digest_a) = entropy_on_fresh_repo(&[]);
    let (_b, second, digest_b) = entropy_on_fresh_repo(&[]);
    assert_eq!(
        first, second,
        "identical repositories must give identical bytes"
    );
    assert_eq!(digest_a, digest_b);

    assert_eq!(
        field(&first, 1, "wall-clock-ns"),
        "946684800000000000",
        "wall clock is fixed at 2000-01-01"
    );
    assert_eq!(field(&first, 2, "wall-clock-ns"), "946684800000000000");
    let mono1: u64 = field(&first, 1, "monotonic-ns").parse().unwrap();
    let mono2: u64 = field(&first, 2, "monotonic-ns").parse().unwrap();
    assert_eq!(
        mono2 - mono1,
        250_000_000,
        "the monotonic clock moves by exactly the time slept"
    );
    assert_ne!(
        field(&first, 1, "random"),
        field(&first, 2, "random"),
        "the random stream advances"
    );
    assert_ne!(
        field(&first, 1, "random"),
        field(&first, 1, "insecure"),
        "sources are independent"
    );
    assert_eq!(field(&first, 1, "env-vars"), "0");
    assert_eq!(field(&first, 1, "args"), "0");

    let (_c, other_head, _) = entropy_on_fresh_repo(&[("README.md", "different content\n")]);
    assert_ne!(
        field(&first, 1, "random"),
        field(&other_head, 1, "random"),
        "the seed follows HEAD"
    );
}

#[test]
fn both_executors_give_byte_identical_output_on_identical_repositories() {
    let backlog = format!(
        "{}{}",
        backlog_with("docs-a", "docs", &["docs/"], &["One", "Two"]),
        backlog_with("tests-b", "tests", &["tests/"], &["Three"]).trim_start_matches("tasks:\n")
    );
    let run = || {
        let repo = TestRepo::new(&backlog, &[]);
        let docs = repo.exec("docs-a").expect("docs");
        let tests = repo.exec("tests-b").expect("tests");
        (
            repo.read("docs/DOCS_A.md"),
            repo.read("tests/test_tests_b.py"),
            docs.digest,
            tests.digest,
        )
    };
    assert_eq!(run(), run());
}
