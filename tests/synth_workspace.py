"""A workspace whose one publisher reads a synthetic territory (``preau.synth.generate`` output):
the repository's datasets and schemas linked, one export, the territory's references. Sectors come
from the layer (``sectors``) or from the carte-scolaire rules (``rules``)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_synth_workspace(ws: Path, synth: Path, publisher: str, territory: list[str], *,
                          sectors: Path | None = None, export: Path | None = None) -> Path:
    """``ws`` with ``publishers/<publisher>.toml``; ``sectors``: a layer (else the synth's rules)."""
    (ws / "publishers").mkdir(parents=True)
    for sub in ("datasets", "schemas"):
        (ws / sub).symlink_to(REPO / sub)
    export = export or sorted(synth.glob("eleves-*.csv"))[-1]
    codes = ", ".join(f'"{t}"' for t in territory)
    lines = [f'id = "{publisher}"', 'name = { fr = "Territoire fictif", en = "Synthetic territory" }',
             'kind = "departement"', 'licence = "etalab-2.0"', f"territory = [{codes}]", "",
             "[[sources]]", f'path = "{export}"', 'profile = "onde"',
             f'school_year = "{export.stem.removeprefix("eleves-")}"', "",
             "[references]", f'schools = "{synth / "ecoles.csv"}"',
             "addresses = [" + ", ".join(f'"{p}"' for p in sorted(synth.glob("adresses-*.csv"))) + "]",
             f'communes = "{synth / "communes.geojson"}"',
             f'sectors = "{sectors}"' if sectors else f'sector_rules = "{synth / "carte-scolaire.csv"}"']
    (ws / "publishers" / f"{publisher}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ws
