"""Per-module mutation scores from mutmut's results under ``mutants/`` (``tox -e mutate``).

    python benchmarks/mutation_scores.py [--survivors] [--names FILE]

Score = (killed + timeout) / checked, as mutmut's own badge counts it: checked is every mutant
run so far, so mutants that no selected test reaches ("no tests": untested code) count as not
killed. ``--names FILE`` restricts the counts to the mutant names in FILE (one per line), e.g.
a sample run with ``mutmut run $(cat FILE)``. ``--survivors`` lists the surviving mutants
(``mutmut show NAME`` prints one's diff). See docs/testing.md.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
          34: "skipped", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout",
          255: "timeout", -11: "segfault", -9: "segfault", None: "not checked"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="mutants", help="mutmut's folder (default: mutants)")
    ap.add_argument("--names", default=None, help="count only the mutant names in this file")
    ap.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = ap.parse_args(argv)
    wanted = None
    if args.names:
        wanted = {line.strip() for line in Path(args.names).read_text().splitlines()
                  if line.strip()}
    counts: dict[str, Counter] = {}
    survivors: list[str] = []
    for meta in sorted(Path(args.root).rglob("*.py.meta")):
        module = str(meta.relative_to(args.root))[: -len(".meta")]
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in sorted(exit_codes.items()):
            if wanted is not None and name not in wanted:
                continue
            status = STATUS.get(code, "suspicious")
            counts.setdefault(module, Counter())[status] += 1
            if status == "survived":
                survivors.append(name)
    print(f"{'module':<30} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} "
          f"{'no tests':>8} {'not run':>7} {'score':>6}")
    for module, c in counts.items():
        total = sum(c.values())
        caught = c["killed"] + c["timeout"] + c["segfault"]
        checked = total - c["not checked"] - c["skipped"]
        score = f"{100 * caught / checked:5.1f}%" if checked else "    -"
        print(f"{module:<30} {total:>7} {c['killed']:>6} {c['timeout']:>7} {c['survived']:>8} "
              f"{c['no tests']:>8} {c['not checked']:>7} {score:>6}")
    if args.survivors:
        print("\nsurvivors:")
        for name in survivors:
            print(f"  {name}")


if __name__ == "__main__":
    main()
