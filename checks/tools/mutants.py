#!/usr/bin/env python3
"""Mutation testing of the actors against the model checker (issue #10).

cargo-mutants lists the mutants of a file; this drives each through the
checked configurations of `checks/tests/model.rs` (cargo-mutants 27 runs
only the mutated package's tests, and the model's checks live in
`leasehold-checks`). Each mutant is applied in a git worktree of HEAD with
its own target directory, so the working tree is never touched.

    python3 checks/tools/mutants.py model/src/chunkserver/lease.rs out.tsv

Writes one line per mutant: caught / MISSED / unviable / timeout, seconds,
the mutant, and the first tests that failed. The three largest
configurations are skipped to keep a mutant near a minute on two cores.
"""
import json
import os
import subprocess
import sys
import time

SKIPS = ["--skip", "master_crash", "--skip", "concurrent_crash", "--skip", "repl_spare"]


def main(path, out):
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
            body = m["diff"].split("\n", 2)[2]
            patch = f"--- a/{m['file']}\n+++ b/{m['file']}\n{body}"
            subprocess.run(["git", "apply", "-"], input=patch.encode(), cwd=wt, check=True)
            started = time.time()
            try:
                r = subprocess.run(test, cwd=wt, env=env, capture_output=True, timeout=400)
                text = r.stdout.decode() + r.stderr.decode()
                failed = [l.split()[1] for l in text.splitlines()
                          if l.startswith("test ") and l.endswith("FAILED")]
                if "could not compile" in text:
                    verdict = "unviable"
                else:
                    verdict = "MISSED" if r.returncode == 0 else "caught"
            except subprocess.TimeoutExpired:
                verdict, failed = "timeout", []
            subprocess.run(["git", "checkout", "--", m["file"]], cwd=wt, check=True)
            line = f"{verdict}\t{int(time.time() - started)}s\t{m['name']}\t{' '.join(failed[:4])}"
            print(f"[{n}/{len(mutants)}] {line}", flush=True)
            with open(out, "a") as f:
                f.write(line + "\n")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", wt], cwd=root, capture_output=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
