"""Hierarchies of dimension values (leaf → … → root) and count tables to protect.

A :class:`Hierarchy` says which values of one dimension add up to which: ``TPS+PS+MS+GS = C1``,
``C1+C2+C3+ULIS = TOTAL``, ``school → commune → TOTAL``. A :class:`CountTable` is a long-form polars
frame (dimension columns + an integer measure, margin rows included) with one hierarchy per
dimension and its disclosure :class:`Policy`.

Cells of different tables are the SAME quantity when their *canonical key* is equal: the set of
``(concept, value)`` pairs over the dimensions whose value is not the root. The concept of a value
is the dimension name unless the hierarchy says otherwise (e.g. the commune rows of a
school × level table carry the concept ``code_insee``, so they are shared with the commune × level
table). Tables of a build are linked through these shared cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping

import polars as pl

from preau.codes import ALL_LEVELS, CYCLE

ROOT = "TOTAL"


@dataclass
class Hierarchy:
    """Values of one dimension and how they add up.

    ``parent`` maps a value to its parent (the root has none). Values met in a frame that are not
    in ``parent`` are leaves directly under the root, unless ``strict`` (then they are an error).
    ``concepts`` gives the concept of some values (default: the dimension name), used to link
    tables (see module doc).
    """

    parent: dict[str, str] = field(default_factory=dict)
    root: str = ROOT
    concepts: dict[str, str] = field(default_factory=dict)
    strict: bool = False

    @classmethod
    def flat(cls, values: Iterable[str] = (), root: str = ROOT) -> "Hierarchy":
        """A one-level hierarchy: every value adds up to ``root`` (e.g. ``oui``/``non`` → ``TOTAL``)."""
        return cls({str(v): root for v in values}, root)

    @classmethod
    def nested(cls, leaf_to_group: Mapping[str, str], group_concept: str | None = None,
               root: str = ROOT) -> "Hierarchy":
        """Two levels: leaf → group → root (e.g. ``uai`` → commune → ``TOTAL``).

        ``group_concept`` names the groups' concept (e.g. ``"code_insee"``) so that group rows
        are shared with a table whose dimension of that name lists the groups.
        """
        parent = {str(k): str(v) for k, v in leaf_to_group.items()}
        groups = set(parent.values())
        parent.update({g: root for g in groups})
        concepts = {g: group_concept for g in groups} if group_concept else {}
        return cls(parent, root, concepts)

    @classmethod
    def niveau(cls) -> "Hierarchy":
        """School levels: TPS,PS,MS,GS → C1; CP,CE1,CE2 → C2; CM1,CM2 → C3; C1,C2,C3,ULIS → TOTAL."""
        parent = {lvl: (ROOT if CYCLE[lvl] == lvl else CYCLE[lvl]) for lvl in ALL_LEVELS}
        parent.update({"C1": ROOT, "C2": ROOT, "C3": ROOT})
        return cls(parent, ROOT, strict=True)

    def parent_of(self, value: str) -> str | None:
        if value == self.root:
            return None
        return self.parent.get(value, self.root)

    def knows(self, value: str) -> bool:
        return value == self.root or value in self.parent or not self.strict

    def to_dict(self) -> dict:
        return {"parent": self.parent, "root": self.root, "concepts": self.concepts, "strict": self.strict}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Hierarchy":
        if "levels" in data and data["levels"] == "niveau":
            return cls.niveau()
        return cls(dict(data.get("parent", {})), data.get("root", ROOT), dict(data.get("concepts", {})),
                   bool(data.get("strict", False)))


@dataclass(frozen=True)
class Policy:
    """Disclosure rule of a table: ``threshold`` (cells with 1 ≤ n < k hidden) or ``none``.

    ``protection_width`` (default k): a hidden cell is protected when the attacker's interval for
    it (LP min … max) is at least that wide.
    """

    rule: Literal["threshold", "none"] = "threshold"
    k: int = 5
    protection_width: int | None = None

    @property
    def width(self) -> int:
        return self.k if self.protection_width is None else self.protection_width


@dataclass
class CountTable:
    """A long-form count table: dimension columns + ``measure`` (int), margins included.

    For a table already published (``published=`` of :func:`protect` / :func:`audit`), a null
    ``measure`` (or ``secret`` true) marks a hidden cell.
    """

    name: str
    frame: pl.DataFrame
    dimensions: dict[str, Hierarchy]
    measure: str = "effectif"
    policy: Policy = field(default_factory=Policy)
    secret: str = "secret"
    # Dimensions whose all-root cell this table does not sum into: along one of them, a row whose
    # parent would be the cell where every ``cut`` dimension is at its root states no equation.
    # For a table crossing two geographic dimensions with département levels (``preau.tables``):
    # its inner piece gives the school and sector equations, its margin pieces give the national
    # total through the départements (so no equation holds every hidden cell of the country).
    cut: tuple[str, ...] = ()
