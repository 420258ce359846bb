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

from preau.codes import CYCLE, ELEMENTARY, LEVELS, NORMAL_AGE, PRE_ELEMENTARY
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
KNOWN_DIMENSIONS = ("annee_scolaire", "uai", "niveau", "code_insee", "code_secteur", "ecart_age", "sexe",
                    "service", "inscrit")
# Levels without ULIS: the population of the age-gap table (a ULIS pupil has no normal level).
HORS_ULIS = "HORS_ULIS"


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
    year = pl.col("annee_scolaire").str.slice(0, 4).cast(pl.Int32)
    normal_age = pl.col("niveau").replace_strict(NORMAL_AGE, default=None, return_dtype=pl.Int32)
    gap = (year - pl.col("annee_naissance")) - normal_age  # > 0: older than normal → behind
    return pupils.with_columns(
        pl.when(normal_age.is_null()).then(None)
        .when(gap > 0).then(pl.lit("retard")).when(gap < 0).then(pl.lit("avance")).otherwise(pl.lit("normal"))
        .alias("ecart_age"),
        pl.col("niveau").replace_strict(CYCLE, default=None).alias("cycle"),
    )


def aggregate(frame: pl.DataFrame, dims: list[str], parents: dict[str, dict[str, str]],
              margins: list[str], complete: list[str] = ()) -> pl.DataFrame:
    """Count rows of ``frame`` over ``dims`` with margins.

    For each dimension in ``margins`` every value is also counted under each ancestor given by
    ``parents[dim]`` (value → parent, up to ``TOTAL``; a value without parent goes to ``TOTAL``).
    Dimensions in ``complete`` get a full grid of their values (zeros included) for each observed
    combination of the other dimensions.
    """
    base = frame.group_by(dims).agg(pl.len().cast(pl.Int64).alias("effectif"))
    for d in dims:
        if d not in margins:
            continue
        par = parents.get(d, {})
        chain_rows = []
        for v in base.get_column(d).unique().to_list():
            node = v
            while node is not None:
                chain_rows.append((v, node))
                node = None if node == ROOT else par.get(node, ROOT)
        chain = pl.DataFrame(chain_rows, schema={d: pl.String, "_anc": pl.String}, orient="row")
        base = (base.join(chain, on=d).drop(d).rename({"_anc": d})
                .group_by(dims).agg(pl.col("effectif").sum()))
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


def _hierarchies(dims: list[str], parents: dict[str, dict[str, str]]) -> dict[str, Hierarchy]:
    out = {}
    for d in dims:
        if d == "annee_scolaire":
            out[d] = Hierarchy()  # no year totals are published: years are separate blocks
        elif d == "niveau":
            out[d] = Hierarchy(dict(parents.get("niveau", niveau_parents())))
        else:
            out[d] = Hierarchy(dict(parents.get(d, {})))
    return out


def policy_of(dataset) -> Policy:
    d = dataset.disclosure
    if d.get("rule") == "none":
        return Policy(rule="none", k=1)
    return Policy(rule="threshold", k=int(d.get("k", 5)), protection_width=d.get("protection_width"))


def build_table(dataset, pupils: pl.DataFrame) -> BuiltTable:
    """The long table of one dataset definition (not the ministry-shaped one)."""
    dims = list(dataset["dimensions"])
    unknown = [d for d in dims if d not in KNOWN_DIMENSIONS]
    if unknown:
        raise PreauError(Problem("dataset-dimension", f"dimension inconnue : {', '.join(unknown)} ; connues : "
                                 f"{', '.join(KNOWN_DIMENSIONS)}", f"unknown dimension: {', '.join(unknown)}; known: "
                                 f"{', '.join(KNOWN_DIMENSIONS)}", file=str(dataset.file), field="dimensions"))
    margins = margins_of(dataset)
    parents = {"niveau": niveau_parents()}
    src = pupils
    if "code_insee" in dims:
        src = src.with_columns(pl.col("code_insee_residence").alias("code_insee"))
    if "code_secteur" in dims:
        src = src.with_columns(pl.col("code_secteur_residence").alias("code_secteur"))
    if "ecart_age" in dims:
        src = src.filter(pl.col("ecart_age").is_not_null())
    complete = [d for d in ("niveau", "ecart_age", "inscrit") if d in dims]
    if "service" in dims:  # one partition of the pupils per service, stacked
        parts = []
        sub_dims = [d for d in dims if d != "service"]
        for service in SERVICES:
            s = src.with_columns(pl.when(pl.col(service)).then(pl.lit("oui")).otherwise(pl.lit("non")).alias("inscrit"))
            parts.append(aggregate(s, sub_dims, parents, margins, complete).with_columns(pl.lit(service).alias("service")))
        frame = pl.concat(parts).select(dims + ["effectif"])
    else:
        frame = aggregate(src, dims, parents, margins, complete)
    policy = policy_of(dataset)
    extra = {}
    zeros = dataset.disclosure.get("hideable_zeros")
    if zeros and policy.rule != "none":
        frame, extra["zero_cells_added"] = add_hideable_zeros(frame, zeros["rows"], zeros["columns"], policy.k)
    frame = sort_table(frame, dims)
    return BuiltTable(dataset.id, dims, frame, to_pieces(dataset.id, dims, frame, policy), policy, extra)


def add_hideable_zeros(frame: pl.DataFrame, row: str, col: str, k: int, per_column: int = 3) -> tuple[pl.DataFrame, int]:
    """Zero cells that secondary suppression may hide, where a column would otherwise be pinned.

    A sparse two-way table (e.g. flows residence sector → school) lists only non-zero cells. When a
    column's only cell is small (``0 < n < k``) and the column total is public (a school's total is
    in the ministry table), that cell equals the total: no suppression among listed cells can
    protect it. Such a cell is protected by hiding, with it, zero cells of its column that can
    close a rectangle: for the lone cell (Y, X), the rows Z that send to a column W that Y also
    sends to (largest flows (Z, W) first, ``per_column`` of them). The zeros are true values
    (published as 0 unless the protection hides them). Returns the table and the cells added.
    """
    other = [d for d in frame.columns if d not in (row, col, "effectif")]
    leaf = frame.filter((pl.col(row) != ROOT) & (pl.col(col) != ROOT)
                        & pl.all_horizontal([pl.col(d) != ROOT for d in other] or [pl.lit(True)]))
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
    new = cands.join(leaf.select(other + [row, col]), on=other + [row, col], how="anti").with_columns(
        pl.lit(0, dtype=frame["effectif"].dtype).alias("effectif")).select(frame.columns)
    return pl.concat([frame, new]), new.height


def margins_of(dataset) -> list[str]:
    dims = list(dataset["dimensions"])
    return list(dataset.disclosure.get("margins", [d for d in dims if d != "annee_scolaire"]))


def to_pieces(name: str, dims: list[str], frame: pl.DataFrame, policy: Policy) -> list[CountTable]:
    """The CountTables disclosure control sees for one long table (true or published form).

    A ``service`` table is three partitions of the same pupils (one per service), each linked to
    the school totals; an age-gap table counts the pupils hors ULIS, which it says with a constant
    ``niveau = HORS_ULIS`` so its totals are linked to the exact school table.
    """
    parents = {"niveau": niveau_parents()}
    if "service" in dims:
        pieces = []
        sub_dims = [d for d in dims if d != "service"]
        for service in SERVICES:
            part = frame.filter(pl.col("service") == service).drop("service").rename({"inscrit": f"inscrit_{service}"})
            pdims = [f"inscrit_{service}" if d == "inscrit" else d for d in sub_dims]
            pieces.append(CountTable(f"{name}.{service}", part, _hierarchies(pdims, parents), policy=policy))
        return pieces
    hier = _hierarchies(dims, parents)
    if "ecart_age" in dims:
        frame = frame.with_columns(pl.lit(HORS_ULIS).alias("niveau"))
        hier["niveau"] = Hierarchy(niveau_parents(with_hors_ulis=True))
    return [CountTable(name, frame, hier, policy=policy)]


def from_pieces(dims: list[str], frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Reassemble protected pieces (inverse of :func:`to_pieces`) into the published long table."""
    if "service" in dims:
        parts = []
        for service, f in zip(SERVICES, frames):
            parts.append(f.rename({f"inscrit_{service}": "inscrit"}).with_columns(pl.lit(service).alias("service")))
        out = pl.concat([p.select(dims + ["effectif", "secret"]) for p in parts])
    else:
        out = frames[0].select(dims + ["effectif", "secret"])
    return sort_table(out, dims)


def school_level_counts(pupils: pl.DataFrame) -> CountTable:
    """Exact counts per school and level (with cycles, hors-ULIS and totals): published by the
    ministry, hence known to any attacker — the anchor every other table is linked to."""
    parents = {"niveau": niveau_parents(with_hors_ulis=True)}
    dims = ["annee_scolaire", "uai", "niveau"]
    frame = aggregate(pupils, dims, parents, ["uai", "niveau"], [])
    return CountTable("effectifs-ecole-niveau", frame, _hierarchies(dims, parents), policy=Policy(rule="none", k=1))


MINISTRY_LEVEL_COLUMNS = {lvl: f"nombre_d_eleves_en_{lvl.lower()}_hors_ulis" for lvl in LEVELS}


def ministry_table(pupils: pl.DataFrame, schools: pl.DataFrame) -> pl.DataFrame:
    """Wide table compatible with the ministry's « Effectifs d'élèves par niveau et nombre de classes
    par école » (plus INSEE code and pre-elementary levels); exact counts."""
    counts = pupils.group_by(["annee_scolaire", "uai", "niveau"]).agg(pl.len().alias("n"))
    wide = counts.pivot(on="niveau", index=["annee_scolaire", "uai"], values="n").fill_null(0)
    for lvl in list(LEVELS) + ["ULIS"]:
        if lvl not in wide.columns:
            wide = wide.with_columns(pl.lit(0, dtype=pl.UInt32).alias(lvl))
    classes = pupils.filter(pl.col("classe").is_not_null()).group_by(["annee_scolaire", "uai"]).agg(
        pl.col("classe").n_unique().alias("nombre_total_de_classes"))
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
