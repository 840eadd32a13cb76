#!/usr/bin/env python3
"""Mutation testing of the actors against the model checker (issue #10).

cargo-mutants lists the mutants of a file; this drives each through the
checked configurations of `checks/tests/model.rs` (cargo-mutants 27 runs
only the mutated package's tests, and the model's checks live in
`leasehold-checks`). Each mutant is applied in a git worktree of HEAD with
its own target directory, so the working tree is never touched.

    python3 checks/tools/mutants.py model/src/chunkserver/lease.rs out.tsv

Writes one line per mutant: caught / MISSED / unviable / timeout, seconds,
the mutant, and the first test that failed. The three largest
configurations are skipped, and a mutant's run stops at the first failing
test (one is enough to call it caught), to keep a mutant near a minute on
two cores. `--from N` resumes a run at the Nth mutant.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

SKIPS = ["--skip", "master_crash", "--skip", "concurrent_crash", "--skip", "repl_spare"]


def run_until_first_failure(test, cwd, env, timeout):
    """Runs the tests; stops them at the first failure. Returns the verdict
    and the failing tests seen."""
    proc = subprocess.Popen(test, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    expired = threading.Event()

    def expire():
        expired.set()
        os.killpg(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(timeout, expire)
    watchdog.start()
    failed, text = [], []
    try:
        for line in proc.stdout:
            text.append(line)
            line = line.rstrip()
            if line.startswith("test ") and line.endswith("FAILED"):
                failed.append(line.split()[1])
                break
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if expired.is_set() and not failed:
        return "timeout", []
    if failed:
        return "caught", failed
    if "could not compile" in "".join(text):
        return "unviable", []
    return ("MISSED" if proc.returncode == 0 else "caught"), []


def main(path, out, first=1):
    root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
    listing = subprocess.check_output(
        ["cargo", "mutants", "--list", "--json", "--diff", "-f", path], cwd=root, text=True
    )
    mutants = json.loads(listing)
    wt = "/tmp/leasehold-mutants-wt"
    subprocess.run(["git", "worktree", "remove", "--force", wt], cwd=root, capture_output=True)
    subprocess.check_call(["git", "worktree", "add", "-q", "--detach", wt, "HEAD"], cwd=root)
    env = dict(os.environ, CARGO_TARGET_DIR="/tmp/leasehold-mutants-target")
    test = ["cargo", "test", "--release", "-p", "leasehold-checks", "--test", "model", "--", *SKIPS]
    try:
        for n, m in enumerate(mutants, 1):
            if n < first:
                continue
            body = m["diff"].split("\n", 2)[2]
            patch = f"--- a/{m['file']}\n+++ b/{m['file']}\n{body}"
            subprocess.run(["git", "apply", "-"], input=patch.encode(), cwd=wt, check=True)
            started = time.time()
            verdict, failed = run_until_first_failure(test, wt, env, timeout=400)
            subprocess.run(["git", "checkout", "--", m["file"]], cwd=wt, check=True)
            line = f"{verdict}\t{int(time.time() - started)}s\t{m['name']}\t{' '.join(failed[:4])}"
            print(f"[{n}/{len(mutants)}] {line}", flush=True)
            with open(out, "a") as f:
                f.write(line + "\n")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", wt], cwd=root, capture_output=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    first = 1
    if "--from" in args:
        i = args.index("--from")
        first = int(args[i + 1])
        del args[i:i + 2]
    main(args[0], args[1], first)
