"""Hypothesis strategies: small random OpenFGA models (DSL) and tuples over a fixed universe."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from bastion.authz.engine import Engine
from bastion.authz.errors import AuthzError
from bastion.authz.model import parse_dsl
from bastion.authz.tuples import Tuple

USERS = ("user:anne", "user:bob", "user:carl")
GROUPS = ("group:g1", "group:g2")
FOLDERS = ("folder:f1", "folder:f2")
DOCS = ("doc:d1", "doc:d2", "doc:d3")
OBJECTS = {"group": GROUPS, "folder": FOLDERS, "doc": DOCS}
TUPLE_USERS = (
    *USERS,
    "user:*",
    *(f"{g}#member" for g in GROUPS),
    *FOLDERS,
    *(f"{f}#f0" for f in FOLDERS),
)
DIRECT_TYPES = ("user", "user:*", "group#member")


@dataclass(frozen=True)
class Scenario:
    dsl: str
    relations: dict[str, tuple[str, ...]]  # type -> relations
    tuples: tuple[Tuple, ...]
    has_exclusion: bool

    def engine(self) -> Engine:
        return Engine(parse_dsl(self.dsl))


@st.composite
def _direct(draw: st.DrawFn) -> str:
    chosen = draw(st.lists(st.sampled_from(DIRECT_TYPES), min_size=1, max_size=3, unique=True))
    return "[" + ", ".join(sorted(chosen)) + "]"


@st.composite
def _rewrite(draw: st.DrawFn, earlier: list[str], ttu: list[str], *, exclusion: bool) -> str:
    leaves = earlier + [f"{r} from parent" for r in ttu]
    if not leaves:
        return draw(_direct())
    ops = ["or", "and"] + (["but not"] if exclusion else [])
    op = draw(st.sampled_from(ops))
    first = draw(st.one_of(_direct(), st.sampled_from(leaves)))
    second = draw(st.sampled_from(leaves))
    if op == "but not":
        return f"{first} but not {second}"
    more = draw(st.lists(st.sampled_from(leaves), max_size=1))
    return f" {op} ".join([first, second, *more])


@st.composite
def scenarios(draw: st.DrawFn, *, exclusion: bool = True, max_tuples: int = 25) -> Scenario:
    extra = draw(st.lists(st.sampled_from(DIRECT_TYPES[1:]), max_size=2, unique=True))
    group_types = ["user", *extra]  # an entry point, so OpenFGA accepts the model
    lines = ["model", "  schema 1.1", "type user", "type group", "  relations"]
    lines.append(f"    define member: [{', '.join(sorted(group_types))}]")
    lines += ["type folder", "  relations", "    define parent: [folder]"]
    folder_rels = ["f0"]
    lines.append(f"    define f0: {draw(_direct())}")
    f1 = draw(_rewrite(["f0"], ["f0"], exclusion=exclusion))
    if draw(st.booleans()):  # recursive through the parent, with a direct entry point
        f1 = f"{draw(_direct())} or f1 from parent"
    lines.append(f"    define f1: {f1}")
    folder_rels.append("f1")
    lines += ["type doc", "  relations", "    define parent: [folder]"]
    lines.append(f"    define d0: {draw(_direct())}")
    doc_rels = ["d0"]
    for i in range(1, draw(st.integers(1, 3)) + 1):
        lines.append(
            f"    define d{i}: {draw(_rewrite(list(doc_rels), folder_rels, exclusion=exclusion))}"
        )
        doc_rels.append(f"d{i}")
    dsl = "\n".join(lines) + "\n"
    engine = Engine(parse_dsl(dsl))
    relations = {
        "group": ("member",),
        "folder": ("parent", *folder_rels),
        "doc": ("parent", *doc_rels),
    }
    candidates = [
        Tuple(obj, rel, user)
        for type_, objects in OBJECTS.items()
        for obj in objects
        for rel in relations[type_]
        for user in TUPLE_USERS
    ]
    valid = [t for t in candidates if _valid(engine, t)]
    tuples = (
        draw(st.lists(st.sampled_from(valid), max_size=max_tuples, unique=True)) if valid else []
    )
    return Scenario(dsl, relations, tuple(tuples), "but not" in dsl)


def _valid(engine: Engine, t: Tuple) -> bool:
    try:
        engine.validate_tuple(t)
    except AuthzError:
        return False
    return True


def queries(scenario: Scenario) -> list[tuple[str, str, str]]:
    """Every (object, relation, user) of the universe for the scenario's relations."""
    users = (*USERS, "user:*", *(f"{g}#member" for g in GROUPS))
    return [
        (obj, rel, user)
        for type_, objects in OBJECTS.items()
        for obj in objects
        for rel in scenario.relations[type_]
        if rel != "parent"
        for user in users
    ]
