"""Times the original Python docs executor in process, as host/sandbox/benches/sandbox.rs
times the sandboxed one: the same task, a fresh directory holding docs/index.md for each
run (made outside the timed region), the executor call alone timed.

Usage: python3 docs_bench.py RUNS   (prints one line: the samples in nanoseconds, JSON)
"""
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from task_exec import execute_docs_task  # noqa: E402

TASK = {
    "id": "docs-bench",
    "title": "Benchmark document",
    "description": "A document of typical size.",
    "scope": "docs",
    "ready": True,
    "allowed_paths": ["docs/"],
    "acceptance_criteria": [f"Criterion number {i} is explained" for i in range(1, 6)],
}


def main() -> None:
    runs = int(sys.argv[1])
    root = tempfile.mkdtemp(prefix="leviathan-py-bench-")
    samples = []
    try:
        for i in range(runs + runs // 10):
            repo = os.path.join(root, str(i))
            os.makedirs(os.path.join(repo, "docs"))
            with open(os.path.join(repo, "docs", "index.md"), "w") as f:
                f.write("# Index\n")
            started = time.perf_counter_ns()
            result = execute_docs_task(TASK["id"], TASK, repo)
            elapsed = time.perf_counter_ns() - started
            if not result.success or len(result.changed_files) != 1:
                raise SystemExit(f"the original executor failed: {result.error}")
            if i >= runs // 10:  # the first tenth warms up
                samples.append(elapsed)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(samples))


if __name__ == "__main__":
    main()
