"""The model makes each hierarchy's nodes once per distinct hierarchy (a build's tables carry equal
hierarchies as separate objects): an equal one shares them, any difference does not, and the model
is the one made without sharing."""

from __future__ import annotations

import copy

import numpy as np

from preau.disclosure import model as model_mod
from preau.disclosure.generate import school_level_tables
from preau.disclosure.hierarchy import Hierarchy


def test_equal_hierarchies_share_their_nodes_and_different_ones_do_not():
    nodes = model_mod._Nodes()
    h = Hierarchy({"a": "g1", "b": "g1", "c": "g2"})
    same = Hierarchy({"a": "g1", "b": "g1", "c": "g2"})
    entry = nodes.of(h)[-1]
    assert nodes.of(same)[-1] == entry
    for other in (Hierarchy({"a": "g1", "b": "g2", "c": "g2"}), Hierarchy({"a": "g1", "b": "g1"}),
                  Hierarchy({"a": "g1", "b": "g1", "c": "g2"}, concepts={"g1": "commune"}),
                  Hierarchy({"a": "g1", "b": "g1", "c": "g2"}, strict=True)):
        assert nodes.of(other)[-1] != entry
    assert nodes.item_names(entry, "d", h, nodes.of(h)[1]) == [f"d={v}" for v in nodes.of(h)[1]]


def test_model_is_the_one_made_without_sharing(monkeypatch):
    tables = list(school_level_tables(n_schools=60, n_communes=12, seed=4))
    # each table its own copies of the hierarchies, as a build gives them
    tables = [copy.deepcopy(t) for t in tables]
    shared = model_mod.build_model(tables)

    class Unshared(model_mod._Nodes):  # a new entry for every dimension of every table
        def of(self, h):
            kept, self.seen = self.seen, []
            out = super().of(h)
            kept.append(self.seen[0])
            self.seen = kept
            return (*out[:-1], len(kept) - 1)

    monkeypatch.setattr(model_mod, "_Nodes", Unshared)
    alone = model_mod.build_model(tables)
    assert shared.n == alone.n and (shared.A != alone.A).nnz == 0
    assert np.array_equal(shared.value, alone.value, equal_nan=True)
    assert all(np.array_equal(a, b) for a, b in zip(shared.labels, alone.labels))
    assert all(np.array_equal(a.var, b.var) for a, b in zip(shared.tables, alone.tables))
