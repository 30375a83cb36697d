"""The cycle checker: dependency cycles in a recorded history of list-append transactions.

Every transaction of a *list-append* history (Elle's workload: Kingsbury & Alvaro, "Elle:
Inferring Isolation Anomalies from Experimental Observations", VLDB 2020, section 4) reads
whole lists by key and appends values to them; every appended value is unique. A read
then names the exact version it saw, and the longest read of a key gives the order in
which that key's versions were installed, because every other read of the key must be a
prefix of it. From that order the checker infers the dependencies Adya's thesis defines
("Weak Consistency: A Generalized Theory and Optimistic Implementations for Distributed
Transactions", MIT, 1999, section 3.1.4) between committed transactions:

* ``ww`` (write-write): Ti installed a version of a key and Tj installed the next one;
* ``wr`` (write-read): Tj read the version of a key Ti installed;
* ``rw`` (read-write, the anti-dependency): Ti read a version of a key and Tj installed
  the next one, so Ti did not see Tj's write.

They form the direct serialization graph (DSG, Adya 3.1.5). A history is serializable
exactly when no cycle of it (nor any of the non-cycle phenomena below) is found (Adya
section 4). The phenomena, as Adya names them (sections 4.1 to 4.4) and Elle checks them:

* ``G0`` dirty write: a cycle of ww edges only;
* ``G1a`` aborted read: a committed transaction read a value an aborted one appended;
* ``G1b`` intermediate read: a committed transaction read a version another transaction
  overwrote itself before it committed (its append was not that transaction's last to
  the key);
* ``G1c`` circular information flow: a cycle of ww and wr edges, at least one wr;
* ``G-single`` single anti-dependency cycle (read skew): a cycle with exactly one rw edge;
* ``G2-item`` item anti-dependency cycle (write skew): a cycle with two or more rw edges;

and, from Elle (section 4.2, "internal consistency" and "incompatible orders"):

* ``internal``: a transaction's read of a key does not end with what that transaction
  itself appended to the key since its previous read of it, or drops what its earlier
  read saw (lists only grow);
* ``incompatible-order``: two reads of a key that are not prefixes of each other, a read
  holding a value twice, or a value no transaction appended: no one order of appends
  explains the reads.

The graph is a networkx ``DiGraph``; cycles are searched inside its strongly connected
components only, one shortest cycle per component and class (the shortest through the
first :data:`TRIES` candidate edges of that class, tried in a fixed order), and each is
explained in plain words.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx  # type: ignore[import-untyped]  # networkx ships no type hints

from failspec import anomalies

#: An operation of a transaction: ``("r", key, list or None)`` or ``("a", key, value)``.
READ, APPEND = "r", "a"
Op = tuple[str, int, Any]

COMMITTED, ABORTED = "committed", "aborted"

#: Every class the checker reports, in the order of Adya's hierarchy, with plain names
#: (the one table of names: failspec.anomalies).
CLASSES: dict[str, str] = anomalies.named(*anomalies.CHECKED_IN_HISTORIES)
CYCLES = ("G0", "G1c", "G-single", "G2-item")
#: How many candidate edges of each class each component's search starts from.
TRIES = 16

WW, WR, RW = "ww", "wr", "rw"


@dataclass
class Transaction:
    """One transaction of a history: its operations, in order, and how it ended.

    ``id`` is unique in the history; ``session`` names who ran it. A read's value is the
    list it returned (None: the key held nothing yet); an aborted transaction's reads are
    kept but prove nothing (Adya: only committed transactions are in the graph).
    """

    id: int
    session: str
    ops: list[Op]
    status: str = COMMITTED
    #: Why it aborted: the PostgreSQL condition (serialization_failure …), if it did.
    condition: str | None = None


@dataclass(frozen=True)
class Anomaly:
    """One anomaly found: its class, the transactions involved (a cycle's, in order,
    first repeated last) and the explanation in plain words."""

    kind: str
    transactions: tuple[int, ...]
    explanation: str

    def __str__(self) -> str:
        return f"{self.kind} ({CLASSES[self.kind]}): {self.explanation}"


@dataclass
class Result:
    """What the checker found: every anomaly, by class (cycles: one per strongly
    connected component of the graph and class)."""

    transactions: int = 0
    committed: int = 0
    aborted: int = 0
    anomalies: dict[str, list[Anomaly]] = field(default_factory=dict)
    #: How many dependency edges of each kind the graph has.
    edges: dict[str, int] = field(default_factory=dict)

    def found(self, kind: str) -> list[Anomaly]:
        return self.anomalies.get(kind, [])

    def count(self, kind: str) -> int:
        return len(self.found(kind))

    def example(self, kind: str) -> Anomaly | None:
        """The anomaly of ``kind`` with the fewest transactions (its shortest cycle)."""
        found = self.found(kind)
        return min(found, key=lambda a: len(a.transactions)) if found else None


def check(history: Iterable[Transaction]) -> Result:
    """Check a list-append history; see the module's docstring for what is found.

    Raises ValueError if two appends carry the same value to the same key (the workload
    must make every appended value unique: the version order is recovered from them)."""
    return _Checker(list(history)).run()


class _Checker:
    def __init__(self, history: list[Transaction]) -> None:
        self.history = history
        self.by_id = {t.id: t for t in history}
        self.committed = {t.id for t in history if t.status == COMMITTED}
        self.result = Result(
            transactions=len(history),
            committed=len(self.committed),
            aborted=sum(t.status == ABORTED for t in history),
        )
        #: (key, value) -> the id of the transaction that appended it.
        self.writer: dict[tuple[int, Any], int] = {}
        #: (transaction, key) -> its last append to the key.
        self.last_append: dict[tuple[int, int], Any] = {}
        #: External reads of committed transactions: the first operation on the key in
        #: the transaction (Elle's "external" reads).
        self.external: list[tuple[int, int, tuple[Any, ...]]] = []
        self.order: dict[int, tuple[Any, ...]] = {}
        self.edges: dict[tuple[int, int], dict[str, Any]] = {}

    def found(self, kind: str, transactions: Sequence[int], explanation: str) -> None:
        anomaly = Anomaly(kind, tuple(transactions), explanation)
        self.result.anomalies.setdefault(kind, []).append(anomaly)

    def run(self) -> Result:
        self.index_writes()
        self.reads()
        self.version_orders()
        self.infer_edges()
        self.cycles()
        return self.result

    # -- what each transaction wrote and read -----------------------------------------

    def index_writes(self) -> None:
        for t in self.history:
            for kind, key, value in t.ops:
                if kind != APPEND:
                    continue
                if (key, value) in self.writer:
                    raise ValueError(f"value {value!r} appended to key {key} twice")
                self.writer[key, value] = t.id
                self.last_append[t.id, key] = value

    def reads(self) -> None:
        """G1a, G1b and internal consistency, read by read; collects the external reads."""
        for t in self.history:
            if t.id not in self.committed:
                continue
            seen: dict[int, tuple[Any, ...] | None] = {}  # key -> last read (None: none)
            since: dict[int, list[Any]] = collections.defaultdict(list)  # own appends since
            for kind, key, value in t.ops:
                if kind == APPEND:
                    seen.setdefault(key, None)
                    since[key].append(value)
                    continue
                read = tuple(value or ())
                if key not in seen:
                    self.external.append((t.id, key, read))
                else:
                    self.internal(t, key, read, seen[key], since[key])
                seen[key] = read
                since[key] = []
                self.dirty(t, key, read)

    def internal(
        self, t: Transaction, key: int, read: tuple[Any, ...],
        before: tuple[Any, ...] | None, own: list[Any],
    ) -> None:  # fmt: skip
        own_tail = not own or list(read[-len(own) :]) == own
        grows = before is None or read[: len(before)] == before
        if own_tail and grows:
            return
        if not own_tail:
            why = f"after appending {_values(own)} to it itself"
        else:
            why = f"after reading it as {_list(before or ())} earlier"
        self.found(
            "internal", [t.id], f"T{t.id} read key {key} as {_list(read)} {why}: a transaction "
            "must see its own appends, and a list only grows",
        )  # fmt: skip

    def dirty(self, t: Transaction, key: int, read: tuple[Any, ...]) -> None:
        for value in read:
            writer = self.writer.get((key, value))
            if writer is not None and writer != t.id and self.by_id[writer].status == ABORTED:
                self.found(
                    "G1a", [t.id, writer], f"T{t.id} read key {key} as {_list(read)}: "
                    f"{value} was appended by T{writer}, which was rolled back "
                    f"({self.by_id[writer].condition or 'aborted'})",
                )  # fmt: skip
        if not read:
            return
        last = read[-1]
        writer = self.writer.get((key, last))
        if writer is None or writer == t.id:
            return
        final = self.last_append.get((writer, key))
        if final != last and self.by_id[writer].status == COMMITTED:
            self.found(
                "G1b", [t.id, writer], f"T{t.id} read key {key} as {_list(read)}, ending in "
                f"{last}, which T{writer} appended and then followed with {final} before it "
                "committed: an intermediate version",
            )  # fmt: skip

    # -- the version order of each key ------------------------------------------------

    def version_orders(self) -> None:
        """The longest read of each key is its order; every other read must be a prefix."""
        reads: dict[int, list[tuple[int, tuple[Any, ...]]]] = collections.defaultdict(list)
        for t in self.history:
            if t.id in self.committed:
                for kind, key, value in t.ops:
                    if kind == READ:
                        reads[key].append((t.id, tuple(value or ())))
        for key, seen in reads.items():
            reader, longest = max(seen, key=lambda r: len(r[1]))
            self.order[key] = longest
            if len(set(longest)) != len(longest):
                twice = next(v for v in longest if longest.count(v) > 1)
                self.found(
                    "incompatible-order", [reader], f"T{reader} read key {key} as "
                    f"{_list(longest)}, holding {twice} twice: it was appended once",
                )  # fmt: skip
            unknown = [v for v in longest if (key, v) not in self.writer]
            if unknown:
                self.found(
                    "incompatible-order", [reader], f"T{reader} read key {key} as "
                    f"{_list(longest)}: no transaction appended {_values(unknown)}",
                )  # fmt: skip
            for other, read in seen:
                if longest[: len(read)] != read:
                    self.found(
                        "incompatible-order", [other, reader], f"T{other} read key {key} as "
                        f"{_list(read)} and T{reader} as {_list(longest)}: one is not the "
                        "beginning of the other, so no one order of appends explains both",
                    )  # fmt: skip
                    break  # one example per key

    # -- the dependency graph ---------------------------------------------------------

    def edge(self, a: int, b: int, kind: str, evidence: Any) -> None:
        if a == b or a not in self.committed or b not in self.committed:
            return
        self.edges.setdefault((a, b), {}).setdefault(kind, evidence)

    def infer_edges(self) -> None:
        writer = self.writer
        for key, order in self.order.items():
            for first, second in itertools.pairwise(order):
                a, b = writer.get((key, first)), writer.get((key, second))
                if a is not None and b is not None:
                    self.edge(a, b, WW, (key, first, second))
        for reader, key, read in self.external:
            order = self.order.get(key, ())
            if read:
                a = writer.get((key, read[-1]))
                if a is not None:
                    self.edge(a, reader, WR, (key, read[-1]))
            following = len(read)
            if following < len(order) and order[:following] == read:
                b = writer.get((key, order[following]))
                if b is not None:
                    self.edge(reader, b, RW, (key, order[following], read))
        counts = collections.Counter(kind for kinds in self.edges.values() for kind in kinds)
        self.result.edges = {kind: counts.get(kind, 0) for kind in (WW, WR, RW)}

    def cycles(self) -> None:
        graph = nx.DiGraph()
        graph.add_edges_from((a, b, {"kinds": kinds}) for (a, b), kinds in self.edges.items())
        components = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
        for component in sorted(components, key=min):
            succ = {
                a: [(b, graph[a][b]["kinds"]) for b in sorted(graph.succ[a]) if b in component]
                for a in component
            }
            for kind in CYCLES:
                cycle = _shortest_cycle(succ, kind)
                if cycle is not None:
                    nodes = [a for a, _, _ in cycle] + [cycle[0][0]]
                    self.found(kind, nodes, self.explain(cycle))

    def explain(self, cycle: list[tuple[int, int, str]]) -> str:
        parts = [self.explain_edge(a, b, kind) for a, b, kind in cycle]
        names = " → ".join(f"T{a}" for a, _, _ in cycle) + f" → T{cycle[0][0]}"
        return (
            f"{names}: " + "; ".join(parts) + ". Each must come before the next, round to "
            "the first: no serial order does that"
        )

    def explain_edge(self, a: int, b: int, kind: str) -> str:
        evidence = self.edges[a, b][kind]
        if kind == WW:
            key, first, second = evidence
            return (
                f"T{a} appended {first} to key {key} and T{b} appended {second} right after it (ww)"
            )
        if kind == WR:
            key, value = evidence
            return f"T{b} read key {key} ending in {value}, which T{a} appended (wr)"
        key, value, read = evidence
        return (
            f"T{a} read key {key} as {_list(read)}, without {value}, which T{b} appended next (rw)"
        )


#: The edges each class's cycle may use, and the kind of edge it must contain.
_ALLOWED = {
    "G0": ({WW}, WW),
    "G1c": ({WW, WR}, WR),
    "G-single": ({WW, WR}, RW),
    "G2-item": ({WW, WR, RW}, RW),
}

Succ = dict[int, list[tuple[int, dict[str, Any]]]]


def _shortest_cycle(succ: Succ, kind: str) -> list[tuple[int, int, str]] | None:
    """The shortest cycle of class ``kind`` through the first :data:`TRIES` edges of the
    kind it must contain: each edge ``a → b`` is closed by the shortest path ``b → a``
    over the edges the class allows (G-single: no rw edge on the way back, so the cycle
    has exactly one; G2-item: at least one rw edge on the way back, so two or more)."""
    allowed, needed = _ALLOWED[kind]
    starts = [(a, b) for a in sorted(succ) for b, kinds in succ[a] if needed in kinds]
    best: list[tuple[int, int, str]] | None = None
    for a, b in starts[:TRIES]:
        path = _path(succ, b, a, allowed, need_rw=kind == "G2-item")
        if path is not None and (best is None or len(path) + 1 < len(best)):
            best = [(a, b, needed), *path]
            if len(best) == 2:
                break
    return best


def _path(
    succ: Succ, start: int, goal: int, allowed: set[str], *, need_rw: bool
) -> list[tuple[int, int, str]] | None:
    """The shortest path ``start → goal`` over ``allowed`` edges (breadth first), as
    (from, to, kind) edges; with ``need_rw``, one that takes at least one rw edge."""
    begin = (start, False)
    parent: dict[tuple[int, bool], tuple[tuple[int, bool], str] | None] = {begin: None}
    frontier = [begin]
    while frontier:
        following = []
        for state in frontier:
            node, took_rw = state
            if node == goal and (took_rw or not need_rw):
                return _unwind(parent, state)
            if node == goal:
                continue  # a cycle passes through its first transaction once
            for target, kinds in succ.get(node, ()):
                for kind in _preferred(kinds, allowed):
                    nxt = (target, took_rw or kind == RW)
                    if nxt not in parent:
                        parent[nxt] = (state, kind)
                        following.append(nxt)
        frontier = following
    return None


def _preferred(kinds: dict[str, Any], allowed: set[str]) -> list[str]:
    """The kinds of one edge a path may take, ww and wr before rw."""
    return [k for k in (WW, WR, RW) if k in kinds and k in allowed]


def _unwind(
    parent: dict[tuple[int, bool], tuple[tuple[int, bool], str] | None], state: tuple[int, bool]
) -> list[tuple[int, int, str]]:
    path = []
    step = parent[state]
    while step is not None:
        previous, kind = step
        path.append((previous[0], state[0], kind))
        state = previous
        step = parent[state]
    return path[::-1]


def _list(values: Sequence[Any]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]" if values else "empty"


def _values(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values)
