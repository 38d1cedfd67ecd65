"""Run a command and report its wall time and the peak memory of its whole process tree.

`os.wait4` (what the benchmarks read) gives the peak RSS of the largest single process. A
command that forks workers, like `sal score`, needs the tree: this samples the proportional set
size (PSS: shared pages split between the processes that share them) of the command and all its
descendants every 0.1 s, from /proc (Linux only).

    .venv/bin/python benchmarks/memtree.py .venv/bin/sal score big.csv -o scored.csv
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # it ended meanwhile
            continue
    return found


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(command: list[str]) -> int:
    start = time.perf_counter()
    process = subprocess.Popen(command)
    peak_kib = peak_processes = 0
    while process.poll() is None:
        tree = descendants(process.pid)
        peak_kib = max(peak_kib, sum(pss_kib(pid) for pid in tree))
        peak_processes = max(peak_processes, len(tree))
        time.sleep(0.1)
    print(
        f"wall {time.perf_counter() - start:.2f} s; peak PSS of the process tree "
        f"{peak_kib / 2**20:.2f} GiB, up to {peak_processes} processes",
        file=sys.stderr,
    )
    return process.returncode


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
