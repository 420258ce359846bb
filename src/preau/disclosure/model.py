"""The linear model behind a set of linked count tables: one variable per distinct cell, one
equation ``parent − Σ children = 0`` per margin cell and dimension.

Built vectorised (polars + numpy): a national school × level table (~1.2 M cells) takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from preau.disclosure.hierarchy import CountTable, Hierarchy
from preau.errors import PreauError, Problem
from preau.frames import first_seen_rows


@dataclass
class TableIndex:
    """Where each row of a table sits in the model."""

    table: CountTable
    var: np.ndarray  # int64, one per row
    hidden: np.ndarray | None = None  # bool per row (published tables: measure null / secret)
    values: np.ndarray | None = None  # float per row (NaN when hidden)


@dataclass
class Model:
    n: int
    A: sp.csr_matrix  # equations × variables, entries ±1
    value: np.ndarray  # float64, NaN when unknown
    tables: list[TableIndex] = field(default_factory=list)
    labels: tuple | None = None  # (table position, row) arrays: first occurrence of each var

    def where(self, var: int) -> tuple[CountTable, int]:
        ti, row = self.labels
        return self.tables[int(ti[var])].table, int(row[var])


def _err(table: str, col: str, fr: str, en: str) -> PreauError:
    return PreauError(Problem("disclosure-table", fr, en, file=table, field=col))


class _Nodes:
    """The nodes of each hierarchy of a build (names root first, their index, each node's parent
    node, the strict check), made once per distinct hierarchy: a build's tables carry equal
    hierarchies as separate objects (national: the 66k schools' one in six tables; 31 dimensions,
    10 distinct hierarchies). Also their ``concept=value`` item names, once per dimension."""

    def __init__(self):
        self.seen: list[tuple] = []
        self.items: dict[tuple[int, str], list[str]] = {}

    def of(self, h: Hierarchy) -> tuple:
        """(known nodes as a dict, names, index, parent ids, strict check passed, the polars mapping
        name → index, entry number) of ``h``, or of the equal hierarchy seen before."""
        for k, e in enumerate(self.seen):
            g = e[0]
            if g is h or (g.root == h.root and g.strict == h.strict and g.parent == h.parent
                          and g.concepts == h.concepts):
                return (*e[1:], k)
        # the hierarchy's nodes (root first); loops kept flat (national: 100k nodes)
        known = dict.fromkeys([h.root, *h.parent.keys(), *h.parent.values()])
        names = list(known)
        index = {v: i for i, v in enumerate(names)}
        parent = np.fromiter((-1 if i == 0 else index[h.parent_of(v)] for i, v in enumerate(names)),
                             dtype=np.int64, count=len(names))  # node 0 is the root
        ok = not h.strict or all(map(h.knows, names))
        mapping = (pl.Series(names, dtype=pl.Utf8), pl.Series(np.arange(len(names), dtype=np.int64)))
        self.seen.append((h, known, names, index, parent, ok, mapping))
        return known, names, index, parent, ok, mapping, len(self.seen) - 1

    def item_names(self, entry: int, dim: str, h: Hierarchy, names: list[str]) -> list[str]:
        """``concept=value`` of every node of a hierarchy entry, for one dimension."""
        key = (entry, dim)
        if key not in self.items:
            concept = h.concepts.get
            self.items[key] = [f"{concept(v, dim)}={v}" for v in names]
        return self.items[key]


def _dim_ids(table: CountTable, dim: str, h: Hierarchy, nodes: _Nodes | None = None
             ) -> tuple[np.ndarray, np.ndarray, list[str], dict, int | None]:
    """Node ids of a dimension column, the parent id of each node (-1 for the root), node names,
    their index and the :class:`_Nodes` entry they are (None: the table adds values of its own)."""
    if dim not in table.frame.columns:
        raise _err(table.name, dim, f"colonne « {dim} » absente du tableau",
                   f"column '{dim}' missing from the table")
    col = table.frame.get_column(dim).cast(pl.Utf8)
    if col.null_count():
        raise _err(table.name, dim, f"valeur vide dans la dimension « {dim} »",
                   f"empty value in dimension '{dim}'")
    uniq = col.unique(maintain_order=True).to_list()
    known, names, index, parent, ok, mapping, entry = (nodes or _Nodes()).of(h)
    # then the table's values the hierarchy does not list (leaves under the root, or an error for
    # a strict hierarchy)
    extra = [v for v in uniq if v not in known]
    if h.strict and not (ok and all(map(h.knows, extra))):
        raise _err(table.name, dim, f"valeur inconnue de la hiérarchie « {dim} »",
                   f"value not in the hierarchy of '{dim}'")
    if extra:
        entry = None
        names = [*names, *extra]
        index = {**index, **{v: len(index) + i for i, v in enumerate(extra)}}
        parent = np.concatenate([parent, np.fromiter((index[h.parent_of(v)] for v in extra), dtype=np.int64,
                                                     count=len(extra))])
        mapping = (pl.Series(names, dtype=pl.Utf8), pl.Series(np.arange(len(names), dtype=np.int64)))
    ids = col.replace_strict(*mapping, return_dtype=pl.Int64).to_numpy()
    return ids, parent, names, index, entry


def _table_structure(table: CountTable, equations: bool = True, nodes: _Nodes | None = None):
    """Row → var-local keys and the equations of one table (rows are local ids). Without
    ``equations`` (linked tables: their equations come from the canonical keys) only the dimension
    ids and the duplicate-cell check (national public group: 2.0 → 1.0 s)."""
    dims = list(table.dimensions)
    n = table.frame.height
    ids, parents, names, strides, entries = [], [], [], [], []
    stride = 1
    for d in dims:
        i, p, nm, _, entry = _dim_ids(table, d, table.dimensions[d], nodes)
        entries.append(entry)
        ids.append(i)
        parents.append(p)
        names.append(nm)
        strides.append(stride)
        stride *= len(nm)
        if stride > 2**62:
            raise _err(table.name, d, "tableau trop grand (trop de dimensions)", "table too large (too many dimensions)")
    key = np.zeros(n, dtype=np.int64)
    for i, s in zip(ids, strides):
        key += i * s
    order = np.argsort(key, kind="stable")
    skey = key[order]
    if n > 1 and np.any(skey[1:] == skey[:-1]):
        raise _err(table.name, ",".join(dims), "cellule en double (mêmes valeurs de dimensions)",
                   "duplicate cell (same dimension values)")
    eq_rows, eq_child, eq_parent = [], [], []
    neq = 0
    for di, (i, p, s) in enumerate(zip(ids, parents, strides) if equations else ()):
        par = p[i]
        has = par >= 0
        rows = np.nonzero(has)[0]
        pkey = key[rows] + (par[rows] - i[rows]) * s
        pos = np.searchsorted(skey, pkey)
        pos[pos >= n] = 0
        found = skey[pos] == pkey
        rows = rows[found]
        prow = order[pos[found]]
        # one equation per parent row of this dimension
        uniq, inv = np.unique(prow, return_inverse=True)
        eq_child.append(rows)
        eq_rows.append(inv + neq)
        eq_parent.append((uniq, np.arange(len(uniq), dtype=np.int64) + neq))
        neq += len(uniq)
    return dims, ids, names, eq_rows, eq_child, eq_parent, neq, entries, parents


class _ItemIds:
    """Integer ids of the ``concept=value`` items of every table of a model (one id space): a
    row's canonical key is the sorted tuple of its items' ids, -1 for a dimension at its root.
    Integer keys joined in polars replace the string keys (``concept=value|…`` built per row and
    per dimension): 32 s → a few seconds for the national tables (2.5 M cells)."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def nodes(self, dim: str, h: Hierarchy, names: list[str], parent: np.ndarray,
              used: np.ndarray, items: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Item id of the ``used`` nodes of a dimension and of their parents (``parent``: node
        index of each node's parent, -1 for the root, from :func:`_dim_ids`); -1 at the root
        and for the nodes not used."""
        need = used.copy()
        p = parent[used]
        need[p[p >= 0]] = True
        need[0] = False  # the root has no item
        ids, concept = self.ids, h.concepts.get
        own = np.full(len(names), -1, dtype=np.int64)
        sel = np.nonzero(need)[0]
        if items is None:  # (``items``: the ``concept=value`` names of every node, made before)
            own[sel] = [ids.setdefault(f"{concept(v, dim)}={v}", len(ids)) for v in (names[j] for j in sel.tolist())]
        else:
            own[sel] = [ids.setdefault(items[j], len(ids)) for j in sel.tolist()]
        par = np.full(len(names), -1, dtype=np.int64)
        par[used] = np.where(p >= 0, own[np.maximum(p, 0)], -1)
        return own, par


def _padded(columns: list[np.ndarray], n: int, width: int) -> np.ndarray:
    """Item-id columns of ``n`` rows as an ``n × width`` array, padded with -1 (root) on the left."""
    out = np.full((n, width), -1, dtype=np.int64)
    for j, c in enumerate(columns):
        out[:, width - len(columns) + j] = c
    return out


def _sorted_keys(items: np.ndarray) -> np.ndarray:
    """Rows of item ids (n × width, -1 at the root and as padding; -2 everywhere: no key) as
    canonical keys: each row sorted, in place."""
    items.sort(axis=1)
    return items


def _key_frame(keys: np.ndarray, n_items: int) -> pl.DataFrame:
    """Canonical keys as few Int64 columns: ids + 2 (so -2 and -1 are 0 and 1) packed
    ``63 // bits`` to a column (national tables: 4 ids of 18 bits in 2 columns; fewer columns make
    the joins faster)."""
    bits = max(1, int(n_items + 1).bit_length())
    per = max(1, 63 // bits)
    k = keys + 2
    cols = {}
    for j, start in enumerate(range(0, k.shape[1], per)):
        c = np.zeros(k.shape[0], dtype=np.int64)
        for i in range(start, min(start + per, k.shape[1])):
            c = (c << bits) | k[:, i]
        cols[f"k{j}"] = c
    return pl.DataFrame(cols)


def _table_keys(t: CountTable, struct, item_ids: _ItemIds, width: int,
                nodes: _Nodes | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The canonical key of each row of ``t`` and, per dimension, the key of each row's parent
    cell (all -2 where none: a root value, see below).

    A table speaks for the intermediate levels its hierarchy declares (e.g. the communes of its
    schools, whose cells may live in another table) and for the root only when it has root rows
    itself: a one-year table does not claim that its year is the whole multi-year total.
    """
    dims, ids, names, entries, parents_of = struct[0], struct[1], struct[2], struct[-2], struct[-1]
    own, par = [], []
    for d, i, nm, entry, pn in zip(dims, ids, names, entries, parents_of):
        h = t.dimensions[d]
        items = nodes.item_names(entry, d, h, nm) if nodes is not None and entry is not None else None
        o, p = item_ids.nodes(d, h, nm, pn, np.bincount(i, minlength=len(nm)) > 0, items)
        own.append(o[i])
        par.append(p[i])
    items = _padded(own, t.frame.height, width)
    pad = width - len(dims)
    is_root = [i == 0 for i in ids]  # node 0 is the root (see _dim_ids)
    parents = []
    for j, d in enumerate(dims):
        none = is_root[j].copy()
        if not is_root[j].any():  # no root rows: no equation into the root
            none |= par[j] < 0
        if d in t.cut:  # no equation into the cell where every cut dimension is at its root
            others = np.ones(len(none), bool)
            for e in t.cut:
                if e != d:
                    others &= is_root[dims.index(e)]
            none |= (par[j] < 0) & others
        pi = items.copy()
        pi[:, pad + j] = par[j]
        pi[none] = -2
        parents.append(_sorted_keys(pi))
    return _sorted_keys(items), parents


def _hidden(table: CountTable) -> np.ndarray:
    f = table.frame
    hid = f.get_column(table.measure).is_null().to_numpy()
    if table.secret in f.columns:
        s = f.get_column(table.secret)
        if s.dtype == pl.Utf8:
            s = s.str.to_lowercase().is_in(["true", "1", "oui", "vrai"])
        hid = hid | s.fill_null(False).cast(pl.Boolean).to_numpy()
    return hid


def _lookup(keys: pl.DataFrame, index: pl.DataFrame) -> np.ndarray:
    """The variable (column ``v`` of ``index``) of each key row, in order; -1 where none.

    Keys of two columns (see :func:`_key_frame`) are first made one: the rank of the first column
    among the index's values, shifted, plus the second. A one-column join keeps the rows' order far
    cheaper than a two-column one (national tables, 10M parent keys into 2.8M cells: 2.1 → 0.8 s)."""
    cols = keys.columns
    if len(cols) == 2 and keys.height and index.height:
        k0, k1 = keys.get_column(cols[0]).to_numpy(), keys.get_column(cols[1]).to_numpy()
        i0, i1 = index.get_column(cols[0]).to_numpy(), index.get_column(cols[1]).to_numpy()
        shift = int(max(k1.max(), i1.max())).bit_length()  # ids + 2 are never negative
        u = np.unique(i0)
        if (len(u) << shift) < 2**62:
            p = np.searchsorted(u, k0)
            p[p >= len(u)] = 0
            known = u[p] == k0  # a first column the index does not hold: no variable
            keys = pl.DataFrame({"c": np.where(known, (p << shift) | k1, -1)})
            index = pl.DataFrame({"c": (np.searchsorted(u, i0) << shift) | i1, "v": index.get_column("v")})
            cols = ["c"]
    return (keys.join(index, on=cols, how="left", maintain_order="left")
            .get_column("v").fill_null(-1).to_numpy())


def build_model(tables: list[CountTable], published: list[CountTable] = (), with_values: bool = True) -> Model:
    """One model over ``tables`` (true values, when ``with_values``) and earlier ``published``
    versions (hidden cells null). Cells with the same canonical key are one variable."""
    alltabs = list(tables) + list(published)
    for t in alltabs:
        if t.measure not in t.frame.columns:
            raise _err(t.name, t.measure, f"colonne de mesure « {t.measure} » absente",
                       f"measure column '{t.measure}' missing")
    nodes = _Nodes()
    structs = [_table_structure(t, equations=len(alltabs) == 1, nodes=nodes) for t in alltabs]
    # variables
    if len(alltabs) == 1:
        var_of = [np.arange(alltabs[0].frame.height, dtype=np.int64)]
        n = alltabs[0].frame.height
    else:
        item_ids = _ItemIds()
        width = max(len(t.dimensions) for t in alltabs)
        raw = [_table_keys(t, st, item_ids, width, nodes) for t, st in zip(alltabs, structs)]
        n_items = len(item_ids.ids)  # known once every table is read: then the keys are packed
        both = [(_key_frame(k, n_items), [_key_frame(p, n_items) for p in ps]) for k, ps in raw]
        del raw
        allk = pl.concat([k for k, _ in both])
        # one grouping for all tables: the distinct keys in first-seen order are the variables,
        # each row's position among them its variable (was a unique, then a join of every key)
        index, pos = first_seen_rows(allk, allk.columns)
        index = index.with_columns(v=pl.arange(0, index.height, dtype=pl.Int64))
        var_of = np.split(pos.astype(np.int64), np.cumsum([k.height for k, _ in both])[:-1])
        n = index.height
    value = np.full(n, np.nan)
    tindex: list[TableIndex] = []
    stale = np.zeros(n, bool)  # cells whose earlier published value differs from the current one
    for ti, (t, v) in enumerate(zip(alltabs, var_of)):
        is_current = ti < len(tables)
        meas = t.frame.get_column(t.measure)
        vals = meas.cast(pl.Float64).to_numpy().copy()
        hid = _hidden(t) if not (is_current and with_values) else np.zeros(len(vals), bool)
        vals[hid] = np.nan
        if is_current and with_values:
            if meas.null_count():
                raise _err(t.name, t.measure, "mesure vide dans un tableau à protéger",
                           "empty measure in a table to protect")
            if np.any(vals < 0):
                raise _err(t.name, t.measure, "effectif négatif", "negative count")
            prev = value[v]
            clash = ~np.isnan(prev) & (prev != vals)
            if np.any(clash):
                raise _err(t.name, t.measure, "deux tableaux donnent des valeurs différentes pour la même cellule",
                           "two tables give different values for the same cell")
            value[v] = vals
        else:
            prev = value[v]
            clash = ~np.isnan(prev) & ~np.isnan(vals) & (prev != vals)
            if clash.any():
                if is_current:
                    raise _err(t.name, t.measure,
                               "deux tableaux publient des valeurs différentes pour la même cellule",
                               "two tables publish different values for the same cell")
                stale[v[clash]] = True  # an earlier version with corrected counts: superseded
            fill = np.isnan(prev) & ~np.isnan(vals)
            value[v[fill]] = vals[fill]
        tindex.append(TableIndex(t, v, hid, vals))
    # labels: first occurrence (table name, row)
    lab_t = np.full(n, -1, dtype=np.int64)
    lab_r = np.full(n, -1, dtype=np.int64)
    for ti in range(len(alltabs) - 1, -1, -1):
        v = var_of[ti]
        lab_t[v] = ti
        lab_r[v] = np.arange(len(v))
    labels = (lab_t, lab_r)
    # equations
    rows, cols, data = [], [], []
    neq = 0
    if len(alltabs) == 1:
        for (dims, ids, names, eq_rows, eq_child, eq_parent, ne, _, _), v in zip(structs, var_of):
            for er, ec, (ep, eid) in zip(eq_rows, eq_child, eq_parent):
                rows.append(er + neq)
                cols.append(v[ec])
                data.append(np.ones(len(ec)))
                rows.append(eid + neq)
                cols.append(v[ep])
                data.append(-np.ones(len(ep)))
            neq += ne
    else:
        # linked tables: a row's parent cell may live in another table (same canonical key);
        # the parent keys of every table and dimension looked up in one join
        pcols = [pk for _, pks in both for pk in pks]
        found = iter(np.split(_lookup(pl.concat(pcols), index), np.cumsum([c.height for c in pcols])[:-1])
                     if pcols else [])
        for ti, (t, v, (_, pks)) in enumerate(zip(alltabs, var_of, both)):
            for _ in pks:
                pv = next(found)
                has = pv >= 0
                child = v[has]
                parent = pv[has]
                if ti >= len(tables) and stale.any():
                    # equations of an earlier version hold for its own (superseded) counts: drop
                    # those touching a corrected cell
                    bad_parent = np.unique(np.concatenate([parent[stale[child]], parent[stale[parent]]]))
                    keep = ~np.isin(parent, bad_parent)
                    child, parent = child[keep], parent[keep]
                uniq, inv = np.unique(parent, return_inverse=True)
                rows.append(inv + neq)
                cols.append(child)
                data.append(np.ones(len(child)))
                rows.append(np.arange(len(uniq)) + neq)
                cols.append(uniq)
                data.append(-np.ones(len(uniq)))
                neq += len(uniq)
    if rows:
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        d = np.concatenate(data)
    else:
        r = c = np.zeros(0, np.int64)
        d = np.zeros(0)
    A = sp.csr_matrix((d, (r, c)), shape=(neq, n))
    A.sum_duplicates()
    m = Model(n=n, A=A, value=value, tables=tindex)
    m.labels = labels
    return m

