"""Instructions per ``Engine.check`` on the ReBAC data of :mod:`bench.authz.rebac`, counted by
valgrind's callgrind: ``random`` (random document/user pairs, nearly all denied: every path up
the folder chain explored) and ``granted`` (pairs granted through a folder team). These are
the checks :mod:`bench.authz.http` sends, without the HTTP stack around them.

The data is built with ``--tuples`` (100,000 by default: the same shapes as the 1,000,000 of
the issue, folder chains as deep, built quickly under valgrind); each pair is checked twice
before counting starts (the parsed-user and target caches warm, the graphs searched kept flat,
as in a running server between writes), then ``--checks`` checks are counted. ``--cold``
empties what the search keeps in the index (the graphs seen, their flat shapes, the users'
closures) before each counted check: the cost of a check whose graph and user were not seen
since the last write. ``--pairs P`` draws P distinct pairs instead and checks them in turn,
round robin, one whole round before counting and ``--checks`` more after: with P far above
what the index keeps (e.g. 20,000 pairs over the 10,000 documents and users of the
100,000-tuple scale), most counted checks find neither their document's graph nor their
user's closure kept, as in a server under checks of documents not seen recently. Usage::

    .venv/bin/python -m bench.authz.engine_instructions [--checks 2000] [--cold] [--pairs P]
        [random granted]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bench import callgrind

TARGETS = ("random", "granted")


def _drive(target: str, n: int, flags: Path, total: int, *, cold: bool, pairs: int) -> None:
    from bastion.authz.engine import Engine  # noqa: PLC0415
    from bastion.authz.model import parse_dsl  # noqa: PLC0415
    from bastion.authz.tuples import MemoryTupleIndex  # noqa: PLC0415
    from bench.authz.rebac import MODEL, build  # noqa: PLC0415
    from bench.authz.rebac_sql import queries  # noqa: PLC0415

    tuples, doc_viewers = build(6, total)
    random_pairs, granted_pairs = queries(tuples, doc_viewers, total, pairs or n, 6)
    chosen = random_pairs if target == "random" else granted_pairs
    engine = Engine(parse_dsl(MODEL))
    index = MemoryTupleIndex(tuples)
    if pairs:  # a whole round, then the next ``n`` checks of the round robin
        for document, user in chosen:
            engine.check(index, document, "viewer", user)
        counted = [chosen[i % len(chosen)] for i in range(n)]
    else:
        for _ in range(2):  # the second check of a graph keeps its shape
            for document, user in chosen:
                engine.check(index, document, "viewer", user)
        counted = chosen
    derived = index._derived  # noqa: SLF001
    callgrind.ready(flags)
    for document, user in counted:
        if cold:
            derived.clear()
        engine.check(index, document, "viewer", user)
    callgrind.done(flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default all)")
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--tuples", type=int, default=100_000)
    parser.add_argument("--cold", action="store_true", help="nothing kept from earlier checks")
    parser.add_argument("--pairs", type=int, default=0, help="distinct pairs, round robin")
    parser.add_argument("--keep", type=Path, help="copy the callgrind files into this folder")
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        target, n, flags = args.drive
        _drive(target, int(n), Path(flags), args.tuples, cold=args.cold, pairs=args.pairs)
        return
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    kept = "nothing kept" if args.cold else "warm"
    if args.pairs:
        kept += f", {args.pairs:,} distinct pairs round robin"
    print(f"{args.checks} checks per target, {args.tuples:,} tuples ({kept}), instructions/check")
    for target in args.targets or TARGETS:
        extra = ["--tuples", str(args.tuples), "--pairs", str(args.pairs)]
        extra += ["--cold"] if args.cold else []
        value = callgrind.count(
            __spec__.name, [target], args.checks, extra=extra, keep=args.keep, label=target
        )
        print(f"{target:<10} {value:>14,.0f}")


if __name__ == "__main__":
    main()
