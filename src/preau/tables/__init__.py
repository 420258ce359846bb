"""Aggregate the canonical pupil frame into the count tables that ``datasets/*.toml`` declare.

Tables are long-form: one row per cell, dimension columns + ``effectif``, with margin rows
(``TOTAL``, and cycle subtotals ``C1``/``C2``/``C3`` for levels) along every dimension listed in
``disclosure.margins``. Each table also comes as :class:`preau.disclosure.CountTable` pieces whose
cells are linked across tables by canonical keys, so that disclosure control protects the whole
build together. The ministry-compatible school table (``shape = "ministere"``) is built wide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from preau.codes import (CYCLE, ELEMENTARY, LEVELS, NORMAL_AGE, PRE_ELEMENTARY, insee_departement,
                         insee_departement_expr, uai_departement)
from preau.disclosure import CountTable, Hierarchy, Policy
from preau.errors import PreauError, Problem

ROOT = "TOTAL"
SERVICES = ("cantine", "periscolaire", "transport")
# Dimension values in their published order (complete grids are built over these).
ORDERED = {
    "niveau": list(LEVELS) + ["ULIS", "C1", "C2", "C3", ROOT],
    "ecart_age": ["avance", "normal", "retard", ROOT],
    "inscrit": ["oui", "non", ROOT],
}
# Pupil column counted by a dimension, where their names differ.
SOURCE_COLUMN = {"code_insee": "code_insee_residence", "code_secteur": "code_secteur_residence"}
KNOWN_DIMENSIONS = ("annee_scolaire", "uai", "niveau", "code_insee", "code_secteur", "ecart_age", "sexe",
                    "service", "inscrit")
# Levels without ULIS: the population of the age-gap table (a ULIS pupil has no normal level).
HORS_ULIS = "HORS_ULIS"
# Geographic dimensions that get département subtotal rows when a publisher's schools span several
# départements, and the concept of those rows (school side vs residence side: the pupils schooled in
# a département are not the pupils living in it). Residence communes and residence sectors share
# theirs: a sector lies in one département, so both count the pupils living there.
DEPARTEMENT_CONCEPTS = {"uai": "departement_ecole", "code_insee": "departement_residence",
                        "code_secteur": "departement_residence"}
DEPARTEMENT_PATTERN = r"\d{2}|2[AB]|97\d"  # a subtotal row's value in those columns: the département code
UNLOCATED_SECTOR = "00000-00"  # pupils whose address could not be placed in any sector


def unlocated_sector(departement: str | None) -> str:
    """Sector code of the pupils of a département whose address could not be placed (``65`` →
    ``65000-00``, ``971`` → ``97100-00``: no commune number is 000 or 00); ``00000-00`` without one."""
    return f"{(departement + '000')[:5]}-00" if departement else UNLOCATED_SECTOR


def unlocated_sector_expr(insee: pl.Expr) -> pl.Expr:
    """:func:`unlocated_sector` of each residence INSEE code, as a polars expression."""
    return ((insee_departement_expr(insee) + pl.lit("000")).str.slice(0, 5) + pl.lit("-00")).fill_null(pl.lit(UNLOCATED_SECTOR))


def sector_departement(code: str) -> str | None:
    return None if code == UNLOCATED_SECTOR else insee_departement(code[:5])


def spans_departements(pupils: pl.DataFrame) -> bool:
    """True when the pupils' schools (``uai``) lie in two départements or more."""
    return len({uai_departement(u) for u in pupils.get_column("uai").unique().to_list()}) > 1


def departement_levels(pupils: pl.DataFrame) -> dict[str, dict[str, str]]:
    """Département subtotals of the geographic dimensions (value → département), for a publisher whose
    schools lie in several départements; ``{}`` for one département.

    Why: with communes, sectors and schools directly under the national ``TOTAL``, every hidden cell
    of the country sits in one equation, so the attacker's LPs form one national block. The
    département rows (large, published) cut it into one block per département (``preau.disclosure``)
    and are useful numbers of their own. ``pupils`` needs ``uai`` (and, when present,
    ``code_insee_residence`` / ``code_secteur_residence``).
    """
    if not spans_departements(pupils):
        return {}
    # values sorted: the hierarchies are written with the audit folder (disclosure-tables.json),
    # whose bytes then no longer depend on the order of a hash grouping
    out = {"uai": {u: uai_departement(u) for u in sorted(pupils.get_column("uai").unique().cast(pl.Utf8).to_list())}}
    for dim, col, dept in (("code_insee", "code_insee_residence", insee_departement),
                           ("code_secteur", "code_secteur_residence", sector_departement)):
        if col in pupils.columns:
            values = sorted(pupils.get_column(col).drop_nulls().unique().cast(pl.Utf8).to_list())
            out[dim] = {v: d for v in values if (d := dept(v)) is not None}
    return out


def niveau_parents(with_hors_ulis: bool = False) -> dict[str, str]:
    parents = {lvl: CYCLE[lvl] for lvl in LEVELS}
    parents["ULIS"] = ROOT
    for c in ("C1", "C2", "C3"):
        parents[c] = HORS_ULIS if with_hors_ulis else ROOT
    if with_hors_ulis:
        parents[HORS_ULIS] = ROOT
    return parents


def derive(pupils: pl.DataFrame) -> pl.DataFrame:
    """Add the derived, non-personal columns: ``ecart_age`` (ahead / normal / behind) and ``cycle``.

    The age gap compares the birth year with the normal one for the level; ULIS pupils have none.
    """
    # the school year's first year per distinct year (not a string slice per pupil)
    years = [y for y in pupils.get_column("annee_scolaire").unique().cast(pl.String).to_list() if y]
    year = pl.col("annee_scolaire").replace_strict({y: int(y[:4]) for y in years}, default=None, return_dtype=pl.Int32)
    normal_age = pl.col("niveau").replace_strict(NORMAL_AGE, default=None, return_dtype=pl.Int32)
    gap = (year - pl.col("annee_naissance")) - normal_age  # > 0: older than normal → behind
    # sign + 1 picks the label (null without a normal age): a gather of Categorical codes, not a
    # when/then chain of strings (national, 12M pupils: 0.70 → 0.32 s)
    ecart = _ECART_LABELS.gather(pupils.select(gap.sign() + 1).to_series())
    # The birth year is not needed once the gap is known. Every text column is stored as
    # Categorical (a 4-byte code per row instead of a 16-byte string view): national pupil frame
    # (12M rows) 1.8 GB → 0.5 GB for the tables stage. The tables' functions read both kinds.
    return pupils.with_columns(
        ecart.alias("ecart_age"),
        pl.col("niveau").replace_strict(CYCLE, default=None).alias("cycle"),
    ).drop("annee_naissance").with_columns(pl.col(pl.String).cast(pl.Categorical))


_ECART_LABELS = pl.Series("ecart_age", ["avance", "normal", "retard"]).cast(pl.Categorical)  # gap < 0, = 0, > 0


def aggregate(frame: pl.DataFrame, dims: list[str], parents: dict[str, dict[str, str]],
              margins: list[str], complete: list[str] = (), weight: str | None = None) -> pl.DataFrame:
    """Count rows of ``frame`` over ``dims`` with margins (``weight``: sum that column instead, for a
    frame already counted over more dimensions).

    For each dimension in ``margins`` every value is also counted under each ancestor given by
    ``parents[dim]`` (value → parent, up to ``TOTAL``; a value without parent goes to ``TOTAL``).
    Dimensions in ``complete`` get a full grid of their values (zeros included) for each observed
    combination of the other dimensions.
    """
    # grouped on categorical codes, not strings: national pupil files (12M rows) peaked at several
    # GB per table in the string hash tables
    strings = [d for d in dims if frame.schema[d] in (pl.String, pl.Categorical)]
    base = (frame.lazy().select(dims + ([weight] if weight else [])).with_columns(pl.col(strings).cast(pl.Categorical))
            .group_by(dims).agg(_tally(weight).cast(pl.Int64).alias("effectif"))
            .collect())
    # the margins are summed on categorical codes too (joins and groupings of 4-byte codes, not
    # strings), the columns made text at the end
    for d in dims:
        if d not in margins:
            continue
        par = parents.get(d, {})
        chain_rows = []
        for v in base.get_column(d).unique().cast(pl.String).to_list():
            node = v
            while node is not None:
                chain_rows.append((v, node))
                node = None if node == ROOT else par.get(node, ROOT)
        chain = pl.DataFrame(chain_rows, schema={d: pl.String, "_anc": pl.String}, orient="row").with_columns(
            pl.col(d, "_anc").cast(pl.Categorical if d in strings else pl.String))
        base = (base.join(chain, on=d).drop(d).rename({"_anc": d})
                .group_by(dims).agg(pl.col("effectif").sum()))
    base = base.with_columns(pl.col(strings).cast(pl.String))
    for d in complete:
        values = ORDERED[d] if d in margins else [v for v in ORDERED[d] if v not in ("C1", "C2", "C3", ROOT)]
        others = [x for x in dims if x != d]
        grid = base.select(others).unique().join(pl.DataFrame({d: values}), how="cross")
        base = grid.join(base, on=dims, how="left").with_columns(pl.col("effectif").fill_null(0))
    return base.select(dims + ["effectif"])


def sort_table(df: pl.DataFrame, dims: list[str]) -> pl.DataFrame:
    keys = []
    for d in dims:
        if d in ORDERED:
            keys.append(pl.col(d).replace_strict({v: i for i, v in enumerate(ORDERED[d])}, default=99,
                                                 return_dtype=pl.Int32))
        else:
            keys.append(pl.when(pl.col(d) == ROOT).then(pl.lit("~")).otherwise(pl.col(d)))
    return df.sort(keys)


@dataclass
class BuiltTable:
    """One dataset's table before disclosure: its long frame and the CountTable pieces to protect."""

    dataset: str
    dims: list[str]
    frame: pl.DataFrame  # long form, all cells (true counts)
    pieces: list[CountTable] = field(default_factory=list)  # what disclosure protects / knows
    policy: Policy = field(default_factory=Policy)
    extra: dict = field(default_factory=dict)
    geo: dict[str, dict[str, str]] = field(default_factory=dict)  # département subtotals, if any


def _hierarchies(dims: list[str], parents: dict[str, dict[str, str]]) -> dict[str, Hierarchy]:
    out = {}
    for d in dims:
        if d == "annee_scolaire":
            out[d] = Hierarchy()  # no year totals are published: years are separate blocks
        elif d == "niveau":
            out[d] = Hierarchy(dict(parents.get("niveau", niveau_parents())))
        elif d in DEPARTEMENT_CONCEPTS and parents.get(d):
            par = parents[d]
            out[d] = Hierarchy(dict(par), concepts={dep: DEPARTEMENT_CONCEPTS[d] for dep in sorted(set(par.values()))})
        else:
            out[d] = Hierarchy(dict(parents.get(d, {})))
    return out


def policy_of(dataset) -> Policy:
    d = dataset.disclosure
    if d.get("rule") == "none":
        return Policy(rule="none", k=1)
    return Policy(rule="threshold", k=int(d.get("k", 5)), protection_width=d.get("protection_width"))


COUNTED = "_eleves"  # column of a counted pupil frame (count_pupils): pupils per row


def source_columns(dims: list[str]) -> list[str]:
    """The pupil columns a table over ``dims`` counts."""
    needed: list[str] = []
    for d in dims:
        needed += list(SERVICES) if d == "service" else [] if d == "inscrit" else [SOURCE_COLUMN.get(d, d)]
    return list(dict.fromkeys(needed))


def count_pupils(pupils: pl.DataFrame, datasets) -> pl.DataFrame:
    """The pupils counted once over the columns the school × level table and the ``datasets``
    without services count (one row per distinct combination, pupils in column :data:`COUNTED`):
    each of those tables then sums that frame instead of grouping every pupil again (national:
    12M pupils → 1.4M rows in 0.4 s; six group-bys of 12M rows → one).

    Tables of the services, and of columns that would make the frame nearly as long as the pupils,
    read the pupils (see ``counted=`` of :func:`build_table`)."""
    cols = ["annee_scolaire", "uai", "niveau"]
    for ds in datasets:
        dims = list(ds["dimensions"])
        if "service" not in dims and ds.get("shape") != "ministere":
            cols += [c for c in source_columns(dims) if c in pupils.columns]
    cols = list(dict.fromkeys(cols))
    strings = [c for c in cols if pupils.schema[c] in (pl.String, pl.Categorical)]
    return (pupils.lazy().select(cols).with_columns(pl.col(strings).cast(pl.Categorical))
            .group_by(cols).agg(pl.len().alias(COUNTED)).collect())


def _tally(weight: str | None) -> pl.Expr:
    """The pupils of a group: the sum of the ``weight`` column (a counted frame), else its rows."""
    return pl.col(weight).sum() if weight else pl.len()


def _source(pupils: pl.DataFrame, counted: pl.DataFrame | None, columns: list[str]) -> tuple[pl.DataFrame, str | None]:
    """Where a table counts ``columns``: the counted frame when it holds them all (weight column
    :data:`COUNTED`), else the pupils (weight None: one per row)."""
    if counted is not None and set(columns) <= set(counted.columns):
        return counted, COUNTED
    return pupils, None


def build_table(dataset, pupils: pl.DataFrame, geo: dict[str, dict[str, str]] | None = None,
                counted: pl.DataFrame | None = None) -> BuiltTable:
    """The long table of one dataset definition (not the ministry-shaped one).

    ``geo``: département subtotals of the geographic dimensions (:func:`departement_levels`).
    ``counted``: the pupils already counted (:func:`count_pupils`), used when it holds every
    column this table counts (same table, less work)."""
    dims = list(dataset["dimensions"])
    unknown = [d for d in dims if d not in KNOWN_DIMENSIONS]
    if unknown:
        raise PreauError(Problem("dataset-dimension", f"dimension inconnue : {', '.join(unknown)} ; connues : "
                                 f"{', '.join(KNOWN_DIMENSIONS)}", f"unknown dimension: {', '.join(unknown)}; known: "
                                 f"{', '.join(KNOWN_DIMENSIONS)}", file=str(dataset.file), field="dimensions"))
    margins = margins_of(dataset)
    geo = geo or {}
    parents = {"niveau": niveau_parents()} | {d: geo[d] for d in dims if d in geo}
    # only the columns this table counts (no copy): the age-gap filter below then copies those
    # columns, not the whole pupil frame (national: 1.6 GB less at the peak of the tables stage)
    needed = source_columns(dims)
    source, weight = _source(pupils, counted, needed)
    src = source.select(needed + ([weight] if weight else []))
    src = src.rename({SOURCE_COLUMN[d]: d for d in dims if d in SOURCE_COLUMN})
    if "ecart_age" in dims:
        src = src.filter(pl.col("ecart_age").is_not_null())
    complete = [d for d in ("niveau", "ecart_age", "inscrit") if d in dims]
    if "service" in dims:  # one partition of the pupils per service, stacked
        parts = []
        sub_dims = [d for d in dims if d != "service"]
        # the pupils counted once over the other dimensions and the three services (one pass over
        # the pupil rows instead of three; national: 2.3 → 1.5 s, same table), each service summed from it
        other = [d for d in sub_dims if d != "inscrit"]
        strings = [d for d in other if src.schema[d] in (pl.String, pl.Categorical)]
        by_services = (src.lazy().with_columns(pl.col(strings).cast(pl.Categorical))
                       .group_by(other + list(SERVICES)).agg(_tally(weight).alias("_n")).collect())
        for service in SERVICES:
            s = by_services.with_columns(pl.when(pl.col(service)).then(pl.lit("oui")).otherwise(pl.lit("non")).alias("inscrit"))
            parts.append(aggregate(s, sub_dims, parents, margins, complete, weight="_n")
                         .with_columns(pl.lit(service).alias("service")))
        frame = pl.concat(parts).select(dims + ["effectif"])
    else:
        frame = aggregate(src, dims, parents, margins, complete, weight=weight)
    frame = _drop_crossed_subtotals(frame, dims, geo)
    policy = policy_of(dataset)
    extra = {}
    zeros = dataset.disclosure.get("hideable_zeros")
    if zeros and policy.rule != "none":
        frame, by_column = add_hideable_zeros(frame, zeros["rows"], zeros["columns"], policy.k)
        # and the other way round: a row whose only cell is small (a sector whose few pupils all
        # attend one school) has a total bounded by that school's public total, below the
        # protection width when the school is small: zeros of its row let that total move too
        frame, by_row = add_hideable_zeros(frame, zeros["columns"], zeros["rows"], policy.k, nearby=False)
        extra["zero_cells_added"] = by_column + by_row
    frame = sort_table(frame, dims)
    return BuiltTable(dataset.id, dims, frame, to_pieces(dataset.id, dims, frame, policy, geo), policy, extra, geo)


def is_margin(dim: str) -> pl.Expr:
    """True on a margin row of ``dim``: ``TOTAL`` or a département subtotal (no leaf value of the
    geographic dimensions looks like a département code)."""
    if dim in DEPARTEMENT_CONCEPTS:
        return (pl.col(dim) == ROOT) | pl.col(dim).str.contains(f"^(?:{DEPARTEMENT_PATTERN})$")
    return pl.col(dim) == ROOT


def add_hideable_zeros(frame: pl.DataFrame, row: str, col: str, k: int, per_column: int = 3,
                       nearby: bool = True) -> tuple[pl.DataFrame, int]:
    """Zero cells that secondary suppression may hide, where a column would otherwise be pinned.

    A sparse two-way table (e.g. flows residence sector → school) lists only non-zero cells. When a
    column's only cell is small (``0 < n < k``) and the column total is public (a school's total is
    in the ministry table), that cell equals the total: no suppression among listed cells can
    protect it. Such a cell is protected by hiding, with it, zero cells of its column that can
    close a rectangle: for the lone cell (Y, X), the rows Z that send to a column W that Y also
    sends to (largest flows (Z, W) first, ``per_column`` of them). The zeros are true values
    (published as 0 unless the protection hides them). Returns the table and the cells added.

    ``nearby``: a lone cell with no such Z closes a rectangle with a large flow of a nearby row
    (same département: the first two characters of ``row``, a sector code); off when ``row`` is
    not a sector code (the call with rows and columns swapped, for rows whose only cell is small).
    """
    other = [d for d in frame.columns if d not in (row, col, "effectif")]
    leaf = frame.filter(~is_margin(row) & ~is_margin(col)
                        & pl.all_horizontal([~is_margin(d) for d in other] or [pl.lit(True)]))
    lone = (leaf.group_by(other + [col]).agg(pl.len().alias("_n"), pl.col(row).first().alias("_y"),
                                              pl.col("effectif").first().alias("_v"))
            .filter((pl.col("_n") == 1) & (pl.col("_v") > 0) & (pl.col("_v") < k))
            .select(other + [pl.col(col).alias("_x"), pl.col("_y").alias(row)]))
    if lone.height == 0:
        return frame, 0
    # the lone row's other columns W, then the other rows Z sending to W
    partners = lone.join(leaf.select(other + [row, col]), on=other + [row]).filter(pl.col(col) != pl.col("_x"))
    cands = (partners.rename({row: "_yy"})
             .join(leaf.select(other + [row, col, pl.col("effectif").alias("_zw")]), on=other + [col])
             .filter(pl.col(row) != pl.col("_yy"))
             .group_by(other + ["_x", row]).agg(pl.col("_zw").max())
             .sort(other + ["_x", "_zw", row], descending=[False] * len(other) + [False, True, False])
             .group_by(other + ["_x"], maintain_order=True).head(per_column)
             .select(other + [pl.col(row), pl.col("_x").alias(col)]))
    # A lone cell with no such Z — its row sends nowhere else (a sector whose few pupils all attend
    # one school), or no other row sends to its row's schools (every pupil of a département in the
    # « not located » sector) — closes a rectangle with a large flow (Z, W) of a nearby row (same
    # first two characters: the département of a sector code), listing the zeros (Z, X) and (Y, W).
    alone = lone.join(cands.select(other + [pl.col(col).alias("_x")]).unique(), on=other + ["_x"], how="anti")
    if alone.height and nearby:
        near = pl.col(row).str.slice(0, 2)
        # Every sort below is on a full key (ties broken by the codes): the cells added, so the
        # tables and their protection, are the same from run to run (sorting by count alone left
        # ties to the threads: national flows differed by a few cells between runs).
        top = (leaf.select(other + [row, col, "effectif"]).with_columns(near.alias("_g"))
               .sort(["effectif", row, col], descending=[True, False, False])
               .group_by(other + ["_g"], maintain_order=True).head(4 * per_column)
               .rename({row: "_z", col: "_w"}))
        rect = (alone.with_columns(near.alias("_g")).join(top, on=other + ["_g"])
                .filter((pl.col("_z") != pl.col(row)) & (pl.col("_w") != pl.col("_x")))
                .sort(other + [row, "_x", "effectif", "_z", "_w"],
                      descending=[False] * (len(other) + 2) + [True, False, False])
                .group_by(other + [row, "_x"], maintain_order=True).head(per_column))
        cands = pl.concat([cands, rect.select(other + [pl.col("_z").alias(row), pl.col("_x").alias(col)]),
                           rect.select(other + [pl.col(row), pl.col("_w").alias(col)])]).unique()
    new = cands.join(leaf.select(other + [row, col]), on=other + [row, col], how="anti").with_columns(
        pl.lit(0, dtype=frame["effectif"].dtype).alias("effectif")).select(frame.columns)
    return pl.concat([frame, new]), new.height


def margins_of(dataset) -> list[str]:
    dims = list(dataset["dimensions"])
    return list(dataset.disclosure.get("margins", [d for d in dims if d != "annee_scolaire"]))


def to_pieces(name: str, dims: list[str], frame: pl.DataFrame, policy: Policy,
              geo: dict[str, dict[str, str]] | None = None) -> list[CountTable]:
    """The CountTables disclosure control sees for one long table (true or published form).

    ``geo``: the département subtotals the table was built with (:func:`departement_levels`).

    A ``service`` table is three partitions of the same pupils (one per service), each linked to
    the school totals; an age-gap table counts the pupils hors ULIS, which it says with a constant
    ``niveau = HORS_ULIS`` so its totals are linked to the exact school table.
    """
    parents = {"niveau": niveau_parents()} | {d: v for d, v in (geo or {}).items() if d in dims}
    if "service" in dims:
        pieces = []
        sub_dims = [d for d in dims if d != "service"]
        for service in SERVICES:
            part = frame.filter(pl.col("service") == service).drop("service").rename({"inscrit": f"inscrit_{service}"})
            pdims = [f"inscrit_{service}" if d == "inscrit" else d for d in sub_dims]
            pieces.append(CountTable(f"{name}.{service}", part, _hierarchies(pdims, parents), policy=policy))
        return pieces
    cross = _crossed_geo(dims, geo)
    if cross:
        # Two geographic dimensions (flows sector → school): the inner cells with flat geographic
        # hierarchies (no equation reaches the all-TOTAL rows from there), and one margin piece per
        # dimension — that dimension down to its leaves, through its départements, every other
        # geographic dimension at TOTAL. Together they state every equation of the table.
        flat = {d: p for d, p in parents.items() if d not in cross}
        subtotal = pl.any_horizontal([pl.col(d).is_in(sorted(set(parents[d].values()))) for d in cross])
        pieces = [CountTable(name, frame.filter(~subtotal), _hierarchies(dims, flat), policy=policy,
                             cut=tuple(cross))]
        for g in cross:
            others = [pl.col(d) == ROOT for d in cross if d != g]
            pieces.append(CountTable(f"{name}.{g}", frame.filter(pl.all_horizontal(others)),
                                     _hierarchies(dims, flat | {g: parents[g]}), policy=policy))
        return pieces
    hier = _hierarchies(dims, parents)
    if "ecart_age" in dims:
        frame = frame.with_columns(pl.lit(HORS_ULIS).alias("niveau"))
        hier["niveau"] = Hierarchy(niveau_parents(with_hors_ulis=True))
    return [CountTable(name, frame, hier, policy=policy)]


def _crossed_geo(dims: list[str], geo: dict[str, dict[str, str]] | None) -> list[str]:
    """The geographic dimensions with département subtotals, when a table crosses two or more."""
    g = [d for d in dims if d in DEPARTEMENT_CONCEPTS and (geo or {}).get(d)]
    return g if len(g) > 1 else []


def _drop_crossed_subtotals(frame: pl.DataFrame, dims: list[str], geo: dict[str, dict[str, str]]) -> pl.DataFrame:
    """Where a table crosses two geographic dimensions, a département subtotal of one is kept only
    with the other at TOTAL (no « sector → département of schools » cells: small, and pinned by the
    schools' public totals — see :func:`to_pieces`)."""
    cross = _crossed_geo(dims, geo)
    if not cross:
        return frame
    dept = {d: pl.col(d).is_in(sorted(set(geo[d].values()))) for d in cross}
    bad = pl.any_horizontal([dept[g] & pl.any_horizontal([pl.col(d) != ROOT for d in cross if d != g])
                             for g in cross])
    return frame.filter(~bad)


def from_pieces(dims: list[str], frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Reassemble protected pieces (inverse of :func:`to_pieces`) into the published long table."""
    if "service" in dims:
        parts = []
        for service, f in zip(SERVICES, frames):
            parts.append(f.rename({f"inscrit_{service}": "inscrit"}).with_columns(pl.lit(service).alias("service")))
        out = pl.concat([p.select(dims + ["effectif", "secret"]) for p in parts])
    else:  # one piece, or the inner and margin pieces of a table crossing two geographic dimensions
        out = pl.concat([f.select(dims + ["effectif", "secret"]) for f in frames]).unique(dims, maintain_order=True)
    return sort_table(out, dims)


def school_level_counts(pupils: pl.DataFrame, geo: dict[str, dict[str, str]] | None = None,
                        counted: pl.DataFrame | None = None) -> CountTable:
    """Exact counts per school and level (with cycles, hors-ULIS and totals): published by the
    ministry, hence known to any attacker — the anchor every other table is linked to. With
    ``geo``, its département sums too (the ministry file gives each school's département).
    ``counted``: as in :func:`build_table`."""
    parents = {"niveau": niveau_parents(with_hors_ulis=True)} | ({"uai": geo["uai"]} if geo and "uai" in geo else {})
    dims = ["annee_scolaire", "uai", "niveau"]
    source, weight = _source(pupils, counted, dims)
    # sorted like every other table: the rows' order (hence the model's variable numbers) must not
    # depend on the threads of the group-by
    frame = sort_table(aggregate(source, dims, parents, ["uai", "niveau"], [], weight=weight), dims)
    return CountTable("effectifs-ecole-niveau", frame, _hierarchies(dims, parents), policy=Policy(rule="none", k=1))


MINISTRY_LEVEL_COLUMNS = {lvl: f"nombre_d_eleves_en_{lvl.lower()}_hors_ulis" for lvl in LEVELS}


def ministry_table(pupils: pl.DataFrame, schools: pl.DataFrame, counted: pl.DataFrame | None = None) -> pl.DataFrame:
    """Wide table compatible with the ministry's « Effectifs d'élèves par niveau et nombre de classes
    par école » (plus INSEE code and pre-elementary levels); exact counts. ``counted``: as in
    :func:`build_table` (the classes are counted from the pupils)."""
    text = lambda cols: [pl.col(c).cast(pl.String) for c in cols]  # noqa: E731  (Categorical from derive)
    source, weight = _source(pupils, counted, ["annee_scolaire", "uai", "niveau"])
    counts = (source.group_by(["annee_scolaire", "uai", "niveau"]).agg(_tally(weight).cast(pl.UInt32).alias("n"))
              .with_columns(text(["annee_scolaire", "uai", "niveau"])))
    wide = counts.pivot(on="niveau", index=["annee_scolaire", "uai"], values="n").fill_null(0)
    for lvl in list(LEVELS) + ["ULIS"]:
        if lvl not in wide.columns:
            wide = wide.with_columns(pl.lit(0, dtype=pl.UInt32).alias(lvl))
    classes = pupils.filter(pl.col("classe").is_not_null()).group_by(["annee_scolaire", "uai"]).agg(
        pl.col("classe").n_unique().alias("nombre_total_de_classes")).with_columns(text(["annee_scolaire", "uai"]))
    s = schools.select(
        pl.col("identifiant_de_l_etablissement").alias("uai"), pl.col("code_region"),
        pl.col("region").alias("region_academique"), pl.col("code_academie"),
        pl.col("libelle_academie").alias("academie"), pl.col("code_departement"), pl.col("departement"),
        pl.col("code_commune").alias("code_insee"), pl.col("nom_commune").alias("commune"), pl.col("code_postal"),
        pl.col("denomination_principale"), pl.col("patronyme"),
        pl.when(pl.col("statut_public_prive").str.to_lowercase().str.starts_with("pub")).then(pl.lit("public"))
        .otherwise(pl.lit("privé")).alias("secteur"),
        pl.col("rep").cast(pl.Int64), pl.col("rep_plus").cast(pl.Int64))
    out = wide.join(s, on="uai", how="left").join(classes, on=["annee_scolaire", "uai"], how="left")
    missing = out.filter(pl.col("code_insee").is_null())["uai"].unique().to_list()
    if missing:
        raise PreauError(Problem("school-unknown", f"{len(missing)} école(s) des exports absentes de l'annuaire des "
                                 f"écoles (ex. {', '.join(missing[:5])})", f"{len(missing)} school(s) of the exports "
                                 f"missing from the school directory (e.g. {', '.join(missing[:5])})", field="uai"))
    lv = {lvl: pl.col(lvl).cast(pl.Int64) for lvl in list(LEVELS) + ["ULIS"]}
    return out.select(
        pl.col("annee_scolaire").str.slice(0, 4).cast(pl.Int64).alias("rentree_scolaire"), "annee_scolaire",
        "code_region", "region_academique", "code_academie", "academie", "code_departement", "departement",
        "code_insee", "commune", "code_postal", pl.col("uai").alias("numero_de_l_ecole"), "denomination_principale",
        "patronyme", "secteur", pl.col("rep").fill_null(0), pl.col("rep_plus").fill_null(0),
        pl.col("nombre_total_de_classes").fill_null(0).cast(pl.Int64),
        pl.sum_horizontal(list(lv.values())).alias("nombre_total_d_eleves"),
        pl.sum_horizontal([lv[x] for x in PRE_ELEMENTARY]).alias("nombre_d_eleves_en_pre_elementaire_hors_ulis"),
        pl.sum_horizontal([lv[x] for x in ELEMENTARY]).alias("nombre_d_eleves_en_elementaire_hors_ulis"),
        lv["ULIS"].alias("nombre_d_eleves_en_ulis"),
        *[lv[x].alias(MINISTRY_LEVEL_COLUMNS[x]) for x in LEVELS],
    ).sort(["annee_scolaire", "code_insee", "numero_de_l_ecole"])
