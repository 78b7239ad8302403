"""ReBAC at scale, in process: 1,000,000 tuples (organizations -> teams -> users, folders nested
up to depth 6 -> documents); random checks p50/p99 and ListObjects over 100,000 documents.

Data (seeded): 10 organizations, 2,000 teams (half nested in another team of their org), 100,000
users in 2 teams each, 100,000 folders in trees up to 6 deep (10 roots per organization, each
root viewable by the organization's all-staff team), 100,000 documents (a parent folder, an owner,
a viewer user, a viewer team) and editor-team grants on documents up to exactly 1,000,000 tuples.

Checks are ``document#viewer`` for (a) random user/document pairs, nearly all denied (the worst
case: every path up the folder chain is explored), (b) pairs granted through a folder team grant.
The baseline printed alongside is a dict lookup of the same (object, relation, user) key, so the
ratio is comparable across machines. Run: ``.venv/bin/python -m bench.authz.rebac``.
Target (issue 6): p99 under 1 ms warm in process.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable, Sequence

from bastion.authz.engine import Engine
from bastion.authz.model import parse_dsl
from bastion.authz.tuples import MemoryTupleIndex, Tuple

MODEL = """
model
  schema 1.1
type user
type organization
  relations
    define member: [user, team#member]
    define admin: [user]
type team
  relations
    define org: [organization]
    define member: [user, team#member]
type folder
  relations
    define org: [organization]
    define parent: [folder]
    define editor: [user, team#member] or editor from parent or admin from org
    define viewer: [user, team#member] or editor or viewer from parent
type document
  relations
    define parent: [folder]
    define owner: [user]
    define editor: [user, team#member] or owner or editor from parent
    define viewer: [user, team#member, user:*] or editor or viewer from parent
"""

ORGS, TEAMS, USERS, FOLDERS, DOCUMENTS = 10, 2_000, 100_000, 100_000, 100_000
ROOTS_PER_ORG, MAX_DEPTH, TOTAL = 10, 6, 1_000_000
STAFF_EVERY = 50  # one user in 50 is in the all-staff team of their organization


def sizes(total: int = TOTAL) -> tuple[int, int, int, int]:
    """Teams, users, folders and documents for ``total`` tuples (the defaults at 1,000,000)."""
    scale = total / TOTAL
    return (
        max(ORGS * 4, round(TEAMS * scale)),
        max(ORGS * 10, round(USERS * scale)),
        max(ORGS * ROOTS_PER_ORG, round(FOLDERS * scale)),
        max(ORGS, round(DOCUMENTS * scale)),
    )


def build(seed: int, total: int = TOTAL) -> tuple[list[Tuple], dict[str, list[str]]]:
    """The tuples, and for each document the teams granted view on its folder chain
    (``total`` scales every population; the default is the issue's 1,000,000)."""
    n_teams, users, folders, documents = sizes(total)
    rng = random.Random(seed)
    out: list[Tuple] = []
    teams_of_org = {o: [f"team:{o}-{i}" for i in range(n_teams // ORGS)] for o in range(ORGS)}
    staff = {o: teams[0] for o, teams in teams_of_org.items()}  # team 0: all staff
    for o, teams in teams_of_org.items():
        for i, team in enumerate(teams):
            out.append(Tuple(team, "org", f"organization:{o}"))
            out.append(Tuple(f"organization:{o}", "member", f"{team}#member"))
            if i % 2 and i > 1:  # half the teams are nested in another team of the org
                out.append(Tuple(rng.choice(teams[1:i]), "member", f"{team}#member"))
    for u in range(users):
        o = u % ORGS
        out.extend(
            Tuple(team, "member", f"user:{u}") for team in rng.sample(teams_of_org[o][1:], 2)
        )
        if (u // ORGS) % STAFF_EVERY == 0:
            out.append(Tuple(staff[o], "member", f"user:{u}"))
    depth: dict[str, int] = {}
    folders_of_org: dict[int, list[str]] = {o: [] for o in range(ORGS)}
    viewers: dict[str, list[str]] = {}
    for f in range(folders):
        o = f % ORGS
        folder = f"folder:{f}"
        existing = folders_of_org[o]
        if len(existing) < ROOTS_PER_ORG:
            depth[folder] = 1
            out.append(Tuple(folder, "org", f"organization:{o}"))
            out.append(Tuple(folder, "viewer", f"{staff[o]}#member"))
            viewers[folder] = [staff[o]]
        else:
            shallow = [p for p in rng.sample(existing, 8) if depth[p] < MAX_DEPTH]
            parent = rng.choice(shallow or existing[:1])
            depth[folder] = depth[parent] + 1
            out.append(Tuple(folder, "parent", parent))
            team = rng.choice(teams_of_org[o][1:])
            out.append(Tuple(folder, "viewer", f"{team}#member"))
            viewers[folder] = [*viewers[parent], team]
        out.append(Tuple(folder, "editor", f"user:{rng.randrange(o, users, ORGS)}"))
        existing.append(folder)
    doc_viewers: dict[str, list[str]] = {}
    for d in range(documents):
        o = d % ORGS
        doc = f"document:{d}"
        folder = rng.choice(folders_of_org[o])
        out.append(Tuple(doc, "parent", folder))
        out.append(Tuple(doc, "owner", f"user:{rng.randrange(o, users, ORGS)}"))
        out.append(Tuple(doc, "viewer", f"user:{rng.randrange(o, users, ORGS)}"))
        out.append(Tuple(doc, "viewer", f"{rng.choice(teams_of_org[o][1:])}#member"))
        doc_viewers[doc] = viewers[folder]
    d = 0
    while len(out) < total:
        o = d % ORGS
        out.append(Tuple(f"document:{d}", "editor", f"{rng.choice(teams_of_org[o][1:])}#member"))
        d = (d + 1) % documents
    return out[:total], doc_viewers


def percentiles(samples: list[int]) -> tuple[float, float, float]:
    samples.sort()
    n = len(samples)
    return samples[n // 2] / 1000, samples[int(n * 0.99)] / 1000, samples[-1] / 1000


def row(name: str, count: int, allowed: str, samples: tuple[list[int], list[int]]) -> None:
    wall, cpu = samples
    p50, p99, worst = percentiles(wall)
    cpu50, cpu99, _ = percentiles(cpu)
    print(
        f"{name:44} {count:>8} {allowed:>8} {p50:>9.2f} {p99:>9.2f} {worst:>9.2f} "
        f"{cpu50:>9.2f} {cpu99:>9.2f}"
    )


def timed(call: Callable[[], object], count: int) -> tuple[list[int], list[int]]:
    """Wall-clock and thread CPU time per call: on a shared machine the CPU time shows the
    engine's own cost, the wall time adds the scheduler's waits."""
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    wall, cpu = [], []
    for _ in range(count):
        c0 = cpu_clock()
        t0 = clock()
        call()
        wall.append(clock() - t0)
        cpu.append(cpu_clock() - c0)
    return wall, cpu


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=6)
    options = parser.parse_args(argv)
    rng = random.Random(options.seed + 1)

    t0 = time.perf_counter()
    tuples, doc_viewers = build(options.seed)
    t1 = time.perf_counter()
    engine = Engine(parse_dsl(MODEL))
    index = MemoryTupleIndex(tuples)
    t2 = time.perf_counter()
    print(
        f"# ReBAC: {len(index):,} tuples (generated in {t1 - t0:.1f} s, "
        f"indexed in {t2 - t1:.1f} s); load {os.getloadavg()[0]:.2f}"
    )

    # Queries, fixed in advance.
    random_pairs = [
        (f"document:{rng.randrange(DOCUMENTS)}", f"user:{rng.randrange(USERS)}")
        for _ in range(options.checks)
    ]
    granted_pairs = []
    members: dict[str, list[str]] = {}
    for t in tuples:
        if t.relation == "member" and t.user.startswith("user:"):
            members.setdefault(t.object, []).append(t.user)
    for _ in range(options.checks):
        doc = f"document:{rng.randrange(DOCUMENTS)}"
        team = rng.choice(doc_viewers[doc])
        granted_pairs.append((doc, rng.choice(members[team])))

    def run(pairs: list[tuple[str, str]]) -> tuple[tuple[list[int], list[int]], int]:
        it = iter(pairs)
        allowed = 0

        def one() -> None:
            nonlocal allowed
            doc, user = next(it)
            allowed += engine.check(index, doc, "viewer", user).allowed

        return timed(one, len(pairs)), allowed

    by_key = {(t.object, t.relation, t.user) for t in tuples[:200_000]}
    keys = [(d, "viewer", u) for d, u in random_pairs]
    it = iter(keys)
    floor = timed(lambda: next(it) in by_key, len(keys))

    columns = ("checks", "allowed", "p50 us", "p99 us", "max us", "cpu p50", "cpu p99")
    print(f"{'case':44} " + " ".join(f"{c:>8}" for c in columns))
    row("baseline: set lookup of the key", len(keys), "-", floor)
    for name, pairs in (
        ("random pairs (mostly denied)", random_pairs),
        ("granted via folder teams", granted_pairs),
    ):
        run(pairs[:1000])  # warm
        samples, allowed = run(pairs)
        row(f"check {name}", len(pairs), str(allowed), samples)

    staff_user = "user:0"  # in organization 0's all-staff team: every document of that org
    ordinary = f"user:{USERS - 1}"  # two teams, a few folders
    for user, label in ((staff_user, "all-staff member"), (ordinary, "ordinary member")):
        start, cpu_start = time.perf_counter(), time.thread_time()
        page = engine.list_objects(index, "document", "viewer", user)
        elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
        print(
            f"ListObjects document#viewer for an {label}: {len(page.items):,} of {DOCUMENTS:,} "
            f"documents in {elapsed * 1000:,.0f} ms ({cpu * 1000:,.0f} ms CPU)"
        )


if __name__ == "__main__":
    main()
