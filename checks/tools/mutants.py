#!/usr/bin/env python3
"""Mutation testing of the actors against the model checker (issue #10).

cargo-mutants lists the mutants of a file; this drives each through the
checked configurations of `checks/tests/model.rs` (cargo-mutants 27 runs
only the mutated package's tests, and the model's checks live in
`leasehold-checks`). Each mutant is applied in a git worktree of HEAD with
its own target directory, so the working tree is never touched.

    python3 checks/tools/mutants.py model/src/chunkserver/lease.rs out.tsv

Writes one line per mutant: caught / COUNT-ONLY / MISSED / unviable /
timeout, seconds, the mutant, and the test that caught it (or the tests
whose pinned state counts alone moved). The three largest configurations
are skipped, and a mutant's run stops at the first failure that is not a
pinned count (one property is enough to call it caught), to keep a mutant
near a minute on two cores; a mutant that only moves counts runs the
whole suite, and is COUNT-ONLY if no property catches it (issue #10: a
changed count must never be the only thing that catches a change).
`--from N` resumes a run at the Nth mutant; `--only N,M` runs those;
`--in-diff D` lists only the mutants of lines a diff D changed (cargo
mutants' own option; the numbering is then of that list), so code changed
since a file's last run is tested without running the file again.
"""
import json
import re
import os
import signal
import subprocess
import sys
import threading
import time

# Exact names: a bare `--skip master_crash` is a substring filter, which
# also skipped every liveness check across a master crash.
SKIPS = ["--exact",
         "--skip", "master_crash_holds_and_reaches_every_companion",
         "--skip", "concurrent_crash_holds_and_reaches_every_companion",
         "--skip", "repl_spare_holds_and_reaches_every_companion"]


PANIC = re.compile(r"^thread '([^']+)'(?: \(\d+\))? panicked at ")


def failure_kind(message):
    """A pinned state count's assertion (`left == right` between two
    numbers) is a count; anything else (a property violated, a companion
    not reached, a seeded bug no longer caught) is a property."""
    if not message or not message[0].startswith("assertion `left == right` failed"):
        return "property"
    numbers = [l.split(":", 1)[1].strip() for l in message[1:3] if ":" in l]
    return "count" if len(numbers) == 2 and all(n.isdigit() for n in numbers) else "property"


def run_until_property_failure(test, cwd, env, timeout):
    """Runs the tests (with --nocapture, so each panic's message shows as it
    happens) and stops them at the first failure that is not a pinned state
    count: a count alone is not a property catching the change (issue #10).
    Returns the verdict and the failing tests seen."""
    proc = subprocess.Popen(test + ["--nocapture"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    expired = threading.Event()

    def expire():
        expired.set()
        os.killpg(proc.pid, signal.SIGKILL)

    watchdog = threading.Timer(timeout, expire)
    watchdog.start()
    counts, text, pending = [], [], None
    caught = None
    try:
        for line in proc.stdout:
            text.append(line)
            line = line.rstrip("\n")
            m = PANIC.match(line)
            if m:
                pending = (m.group(1), [])
                continue
            if pending is not None:
                pending[1].append(line)
                if len(pending[1]) < 3:
                    continue
                name, message = pending
                pending = None
                if failure_kind(message) == "count":
                    counts.append(name)
                else:
                    caught = name
                    break
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if caught is None and pending is not None:
        name, message = pending
        if failure_kind(message) == "count":
            counts.append(name)
        else:
            caught = name
    if caught is not None:
        return "caught", [caught]
    if expired.is_set():
        return "timeout", counts
    if counts:
        return "COUNT-ONLY", counts
    if "could not compile" in "".join(text):
        return "unviable", []
    return ("MISSED" if proc.returncode == 0 else "caught"), []


def main(path, out, first=1, only=(), in_diff=None):
    root = subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip()
    lister = ["cargo", "mutants", "--list", "--json", "--diff", "-f", path]
    if in_diff:
        lister += ["--in-diff", os.path.abspath(in_diff)]
    listing = subprocess.check_output(lister, cwd=root, text=True)
    mutants = json.loads(listing)
    wt = "/tmp/leasehold-mutants-wt"
    subprocess.run(["git", "worktree", "remove", "--force", wt], cwd=root, capture_output=True)
    subprocess.check_call(["git", "worktree", "add", "-q", "--detach", wt, "HEAD"], cwd=root)
    env = dict(os.environ, CARGO_TARGET_DIR="/tmp/leasehold-mutants-target", RUST_BACKTRACE="0")
    test = ["cargo", "test", "--release", "-p", "leasehold-checks", "--test", "model", "--", *SKIPS]
    try:
        for n, m in enumerate(mutants, 1):
            if n < first or (only and n not in only):
                continue
            body = m["diff"].split("\n", 2)[2]
            patch = f"--- a/{m['file']}\n+++ b/{m['file']}\n{body}"
            subprocess.run(["git", "apply", "-"], input=patch.encode(), cwd=wt, check=True)
            started = time.time()
            verdict, failed = run_until_property_failure(test, wt, env, timeout=900)
            subprocess.run(["git", "checkout", "--", m["file"]], cwd=wt, check=True)
            line = f"{verdict}\t{int(time.time() - started)}s\t{m['name']}\t{' '.join(failed[:4])}"
            print(f"[{n}/{len(mutants)}] {line}", flush=True)
            with open(out, "a") as f:
                f.write(line + "\n")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", wt], cwd=root, capture_output=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    first, only = 1, ()
    if "--from" in args:
        i = args.index("--from")
        first = int(args[i + 1])
        del args[i:i + 2]
    if "--only" in args:
        i = args.index("--only")
        only = {int(n) for n in args[i + 1].split(",")}
        del args[i:i + 2]
    in_diff = None
    if "--in-diff" in args:
        i = args.index("--in-diff")
        in_diff = args[i + 1]
        del args[i:i + 2]
    main(args[0], args[1], first, only, in_diff)
