"""The ``preau`` command line: parses arguments, calls one library function, reports.

Library errors (:class:`preau.errors.PreauError`) become a clear message in French (or English with
``--lang en`` / ``PREAU_LANG=en``) and a non-zero exit code; never a traceback for a user mistake.
Each stage adds its command here; the work itself lives in the library.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from preau import __version__
from preau.errors import PreauError

app = typer.Typer(
    name="preau",
    help=(
        "Préau : publier les données scolaires en open data, sans aucune donnée personnelle.\n\n"
        "Chaîne : synth (territoire fictif) → build (lecture des exports, tableaux, secret statistique, "
        "audit) → validate → geo → publish → site. Commencez par « preau demo ».\n\n"
        "Préau: publish French school data as open data, with no personal data. Use --lang en for English."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


class _LazyConsole:
    """rich's Console, created (and rich imported, ~40 ms) on first use: `preau validate --json` never needs it."""

    def __init__(self, **options):
        self._options, self._console = options, None

    def __getattr__(self, name):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)

    # special methods are looked up on the type, not through __getattr__ (rich's Live uses `with console`)
    def __enter__(self):
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc):
        return self.__getattr__("__exit__")(*exc)


console = _LazyConsole(stderr=True)
out = _LazyConsole()


def _version(value: bool) -> None:
    if value:
        print(f"preau {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    lang: Optional[str] = typer.Option(
        None, "--lang", help="Langue des messages : fr (défaut) ou en. / Message language: fr (default) or en.",
        envvar="PREAU_LANG"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Version de Préau."),
) -> None:
    if lang:
        os.environ["PREAU_LANG"] = lang


def lang() -> str:
    from preau.i18n import current_lang

    return current_lang()


def fail(exc: PreauError, as_json: bool = False) -> None:
    """Print a library error for users and exit non-zero."""
    if as_json:
        print(exc.report.to_json())
    else:
        title = "Erreur" if lang() == "fr" else "Error"
        console.print(f"[bold red]{title}[/bold red]")
        for problem in exc.report.problems:
            console.print("  " + problem.render(lang()), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=exc.exit_code)


@app.command("check")
def check_cmd(
    workspace: Path = typer.Argument(Path("."), help="Dossier de l'espace de travail (publishers/, datasets/, schemas/)."),
    as_json: bool = typer.Option(False, "--json", help="Rapport en JSON."),
) -> None:
    """Vérifier la configuration d'un espace de travail (éditeurs, jeux de données, schémas).

    Chaque erreur est signalée sous la forme fichier:ligne: message.
    """
    from preau.workspace import load_workspace

    try:
        ws, report = load_workspace(workspace)
    except PreauError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print(report.to_json())
    else:
        msg = ("Configuration valide : {p} éditeur(s), {d} jeu(x) de données, {s} schéma(s)."
               if lang() == "fr" else "Valid configuration: {p} publisher(s), {d} dataset(s), {s} schema(s).")
        out.print(msg.format(p=len(ws.publishers), d=len(ws.datasets), s=len(ws.schemas)))


@app.command("init")
def init_cmd(
    target: Path = typer.Argument(..., help="Dossier à créer pour le nouvel espace de travail."),
    publisher_id: str = typer.Option(..., "--id", help="Identifiant de l'éditeur (ex. ville-de-tarbes)."),
    name: str = typer.Option(..., "--name", help="Nom de l'éditeur (ex. « Ville de Tarbes »)."),
    kind: str = typer.Option("commune", "--kind", help="commune, epci, departement, region, academie ou national."),
    territory: Optional[list[str]] = typer.Option(None, "--territory", help="Code INSEE ou de département (répétable)."),
) -> None:
    """Créer un espace de travail pour une collectivité : publishers/, datasets/, schemas/, exports/.

    Exemple : preau init ma-commune --id ville-de-tarbes --name "Ville de Tarbes" --territory 65440
    """
    from preau.workspace import init_workspace

    try:
        path = init_workspace(target, publisher_id, name, kind, territory)
    except PreauError as exc:
        fail(exc)
        return
    msg = ("Espace de travail créé dans {p}. Déposez les exports dans exports/, déclarez-les dans "
           "publishers/{i}.toml, puis : preau check {p} && preau build {p}"
           if lang() == "fr" else "Workspace created in {p}. Put exports in exports/, declare them in "
           "publishers/{i}.toml, then: preau check {p} && preau build {p}")
    out.print(msg.format(p=path, i=publisher_id))


@app.command("synth")
def synth_cmd(
    out_dir: Path = typer.Option(Path("_build/synth"), "--out", help="Dossier de sortie (remplacé)."),
    departements: str = typer.Option("65", "--departements", "-d",
                                     help="Codes de départements séparés par des virgules, ou « all » (France entière)."),
    seed: int = typer.Option(2026, "--seed", help="Graine : même graine, mêmes fichiers."),
    years: int = typer.Option(3, "--years", help="Nombre d'années scolaires consécutives."),
    last_year: int = typer.Option(2026, "--last-year", help="Année de rentrée de la dernière année scolaire."),
    pupils: Optional[int] = typer.Option(None, "--pupils", help="Nombre d'élèves visé (dernière année)."),
    xlsx: bool = typer.Option(False, "--xlsx", help="Écrire aussi les exports élèves en XLSX."),
    workers: Optional[int] = typer.Option(None, "--workers",
                                          help="Processus en parallèle sur les départements (défaut : 2 si plusieurs)."),
) -> None:
    """Générer un territoire fictif réaliste : adresses (format BAN), écoles, secteurs, élèves (ONDE).

    Les limites communales sont réelles (IGN ADMIN EXPRESS) ; tout le reste est fictif. Les exports
    élèves sont au format d'ONDE : CSV Windows-1252, séparateur « ; », en-têtes français.

    Exemple : preau synth --departements 65 --seed 7 --out _build/synth
    """
    from rich.progress import Progress

    from preau.synth import generate

    deps = [d.strip() for d in departements.split(",") if d.strip()]
    try:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("synth", total=None)

            def progress(dep: str, i: int, n: int) -> None:
                bar.update(task, total=n, completed=i, description=f"département {dep}")

            result = generate(out_dir, deps, seed=seed, years=years, last_year=last_year, pupils=pupils,
                              xlsx=xlsx, workers=workers, progress=progress)
    except PreauError as exc:
        fail(exc)
        return
    title = "Territoire fictif écrit dans" if lang() == "fr" else "Synthetic territory written to"
    out.print(f"{title} {result.out_dir}")
    for key, value in result.counts.items():
        out.print(f"  {key}: {value:,}".replace(",", "\u202f"))


geo_app = typer.Typer(help="Géographie : géocodage hors ligne (BAN), secteurs scolaires, couches. / Geography.",
                      no_args_is_help=True)
app.add_typer(geo_app, name="geo")


@geo_app.command("geocode")
def geo_geocode_cmd(
    input_csv: Path = typer.Argument(..., help="CSV d'adresses (colonnes adresse, code_postal, commune et/ou code_insee)."),
    reference: list[Path] = typer.Option(..., "--reference", "-r", help="Fichier(s) BAN CSV de référence."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Écrire les résultats (contiennent des adresses) : sous _build/ seulement."),
    as_json: bool = typer.Option(False, "--json", help="Rapport de qualité en JSON."),
) -> None:
    """Géocoder des adresses hors ligne avec la BAN ; affiche le rapport de qualité (aucune adresse affichée)."""
    from preau.geo.commands import geocode_file

    try:
        q = geocode_file(input_csv, reference, output)
    except PreauError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print(json.dumps(q, ensure_ascii=False, indent=2))
        return
    fr = lang() == "fr"
    out.print((f"{q['total']} adresse(s) géocodée(s), référence : {q['reference']['addresses']} adresses BAN" if fr
               else f"{q['total']} address(es) geocoded, reference: {q['reference']['addresses']} BAN addresses"))
    for kind, n in q["counts"].items():
        out.print(f"  {kind:<14} {n:>9}  {q['shares'][kind]:.1%}")
    out.print(("Non trouvées : " if fr else "Not found: ") + str(q["unmatched"]))
    for p in q["problems"]:
        console.print("  " + (p["fr"] if fr else p["en"]), markup=False, highlight=False)
    if q.get("output"):
        out.print(("Résultats écrits dans " if fr else "Results written to ") + q["output"])


@geo_app.command("sectors")
def geo_sectors_cmd(
    rules: Path = typer.Option(..., "--rules", help="Carte scolaire (format du ministère : voie, numéros, parité)."),
    addresses: list[Path] = typer.Option(..., "--addresses", help="Fichier(s) BAN CSV des adresses."),
    communes: Path = typer.Option(..., "--communes", help="Couche des communes (GeoJSON, GPKG, Shapefile)."),
    out_dir: Path = typer.Option(..., "--out", help="Dossier de sortie des couches de secteurs."),
    as_json: bool = typer.Option(False, "--json", help="Rapport en JSON."),
) -> None:
    """Construire les polygones des secteurs scolaires à partir des règles de la carte scolaire."""
    from preau.geo.commands import sectors_from_rules

    try:
        r = sectors_from_rules(rules, addresses, communes, out_dir)
    except PreauError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print(json.dumps(r, ensure_ascii=False, indent=2))
        return
    fr = lang() == "fr"
    m = r["match"]
    out.print((f"{r['sectors']} secteur(s) écrits dans {r['out']}" if fr else f"{r['sectors']} sector(s) written to {r['out']}"))
    out.print((f"  voies des règles trouvées : {m['street_match_rate']:.1%} ({m['street_rules_matched']}/{m['street_rules']})"
               if fr else f"  rule streets found: {m['street_match_rate']:.1%} ({m['street_rules_matched']}/{m['street_rules']})"))
    out.print((f"  adresses affectées : {m['address_match_rate']:.1%} ({m['addresses_assigned']}/{m['addresses']})"
               if fr else f"  addresses assigned: {m['address_match_rate']:.1%} ({m['addresses_assigned']}/{m['addresses']})"))
    t = r["topology"]
    out.print((f"  topologie : {len(t['overlaps'])} chevauchement(s), {len(t['gaps'])} commune(s) avec trous" if fr
               else f"  topology: {len(t['overlaps'])} overlap(s), {len(t['gaps'])} commune(s) with gaps"))
    for p in r["problems"]:
        console.print("  " + (p["fr"] if fr else p["en"]), markup=False, highlight=False)


@app.command("ingest")
def ingest_cmd(
    files: list[Path] = typer.Argument(..., help="Exports élèves (CSV Windows-1252 ou UTF-8, XLSX)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="Profil d'en-têtes (par défaut : détecté)."),
    school_year: Optional[str] = typer.Option(None, "--school-year", help="Année scolaire si absente du fichier."),
    as_json: bool = typer.Option(False, "--json", help="Rapport en JSON."),
) -> None:
    """Vérifier des exports élèves sans rien publier : encodage, colonnes, valeurs, doublons.

    Les erreurs indiquent fichier, ligne et champ, jamais la valeur d'un champ personnel.
    Exemple : preau ingest _build/synth/eleves-2026-2027.csv
    """
    from preau.ingest import read_export
    from preau.errors import Report

    report = Report()
    rows = 0
    for path in files:
        try:
            res = read_export(path, profile, school_year)
            rows += res.rows
            report.extend(res.report.problems)
        except PreauError as exc:
            report.extend(exc.report.problems)
    if report.errors:
        fail(PreauError(report), as_json)
    if as_json:
        print(json.dumps({**report.to_dict(), "rows": rows}, ensure_ascii=False, indent=2))
    else:
        msg = "{n} élève(s) lus, aucune erreur." if lang() == "fr" else "{n} pupil row(s) read, no error."
        out.print(msg.format(n=rows))


@app.command("validate")
def validate_cmd(
    target: Path = typer.Argument(..., help="Fichier CSV / Parquet à valider, ou datapackage.json."),
    schema: Optional[str] = typer.Option(None, "--schema", "-s",
                                         help="Table Schema : chemin, ou nom d'un dossier de schemas/ (ex. eleves-premier-degre)."),
    as_json: bool = typer.Option(False, "--json", help="Rapport complet compatible frictionless (JSON)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Écrire aussi le rapport en HTML (fragment) dans ce fichier."),
    vlang: Optional[str] = typer.Option(None, "--lang", help="Langue du rapport : fr (défaut) ou en."),
) -> None:
    """Valider un fichier contre un Table Schema (ou un paquet de données) : rapport complet, en français.

    Sortie : 0 valide, 1 invalide, 2 erreur d'usage ou fichier introuvable.
    Exemple : preau validate eleves.csv --schema eleves-premier-degre
    """
    from preau.validate import validate_path

    if vlang:
        os.environ["PREAU_LANG"] = vlang
    try:
        report = validate_path(target, schema, lang=lang())
    except PreauError as exc:
        fail(exc, as_json)
        return
    if html:
        html.write_text(report.to_html(lang()), encoding="utf-8")
    if as_json:
        print(report.to_json())
    else:
        print(report.render(lang()))
    _EXIT_NOW["ok"] = True  # all written: main() may skip freeing the table's memory at exit
    raise typer.Exit(code=0 if report.valid else 1)


schema_app = typer.Typer(help="Schémas (Table Schema) de schemas/. / Table Schemas.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


@schema_app.command("doc")
def schema_doc_cmd(
    root: Optional[Path] = typer.Argument(None, help="Dossier des schémas (défaut : schemas/ du dépôt)."),
    check: bool = typer.Option(False, "--check", help="Vérifier seulement que les README sont à jour."),
) -> None:
    """Générer le README.md (table des champs) de chaque schéma à partir de son schema.json."""
    from preau.validate.doc import write_schema_docs

    try:
        changed = write_schema_docs(root, check=check)
    except PreauError as exc:
        fail(exc)
        return
    msg = ("{n} README mis à jour." if lang() == "fr" else "{n} README(s) updated.") if not check else (
        "README à jour." if lang() == "fr" else "READMEs up to date.")
    out.print(msg.format(n=len(changed)))


@app.command("publish")
def publish_cmd(
    workspace: Path = typer.Argument(Path("."), help="Espace de travail (sa construction est dans _build/data)."),
    ckan: Optional[bool] = typer.Option(
        None, "--ckan/--local",
        help="Vers CKAN (PREAU_CKAN_URL + PREAU_CKAN_TOKEN) ou vers le catalogue local _build/catalog. "
             "Par défaut : CKAN si ces deux variables sont définies, sinon local."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Afficher les différences sans rien écrire."),
    as_json: bool = typer.Option(False, "--json", help="Rapport en JSON."),
) -> None:
    """Empaqueter la construction et la publier (catalogue local ou CKAN), sans renvoyer ce qui n'a pas changé."""
    from preau.catalog.publish import publish

    try:
        report = publish(workspace, target=None if ckan is None else ("ckan" if ckan else "local"),
                         dry_run=dry_run, lang=lang())
    except PreauError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print(report.to_json())
    else:
        out.print(report.render(lang()), markup=False, highlight=False)


@app.command("harvest")
def harvest_cmd(
    source: Optional[str] = typer.Option(None, "--source", help="Moissonner cette source seulement (son name)."),
    sources: Path = typer.Option(Path("catalog/sources.toml"), "--sources", help="Fichier des sources."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Montrer ce qui serait écrit, sans rien écrire."),
    as_json: bool = typer.Option(False, "--json", help="Rapport de santé en JSON."),
    into: Optional[str] = typer.Option(None, "--into", help="Cible : ckan (défaut) ou local:DOSSIER "
                                       "(catalogue de fichiers, p. ex. local:_build/catalog, que le site affiche)."),
) -> None:
    """Moissonner les catalogues des éditeurs (CKAN, DCAT-AP, Préau) dans le CKAN central
    (PREAU_CKAN_URL, PREAU_CKAN_TOKEN) ou le catalogue local (--into local:_build/catalog), avec leur
    provenance. Code de sortie 1 si une source a échoué."""
    from preau.catalog.harvest import harvest

    try:
        report = harvest(sources, only=source, dry_run=dry_run, into=into)
    except PreauError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print(report.to_json())
    else:
        out.print(report.render(lang()), markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)


site_app = typer.Typer(help="Site statique de documentation (jeux de données, schémas, écoles, cartes).",
                       no_args_is_help=True)
app.add_typer(site_app, name="site")


@site_app.command("build")
def site_build_cmd(
    catalog: Path = typer.Option(Path("_build/catalog"), "--catalog", help="Catalogue local (catalog.json)."),
    out_dir: Path = typer.Option(Path("_build/site"), "--out", help="Dossier du site produit."),
    workspace: Path = typer.Option(Path("."), "--workspace", help="Espace de travail (schemas/, site/ pour surcharger les gabarits)."),
    as_json: bool = typer.Option(False, "--json", help="Rapport en JSON."),
) -> None:
    """Construire le site statique depuis le catalogue local (seules les pages modifiées sont réécrites)."""
    from preau.website import build_site

    try:
        result = build_site(catalog, out_dir, workspace=workspace)
    except PreauError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    msg = ("Site construit dans {out} : {p} pages, {w} fichier(s) écrit(s), {r} supprimé(s), {s:.1f} s."
           if lang() == "fr" else "Site built in {out}: {p} pages, {w} file(s) written, {r} removed, {s:.1f} s.")
    out.print(msg.format(out=out_dir, p=result.pages, w=len(result.written), r=len(result.removed), s=result.seconds))
    for problem in result.report.problems:
        console.print("  " + problem.render(lang()), markup=False, highlight=False)


@app.command("serve")
def serve_cmd(
    site_dir: Path = typer.Option(Path("_build/site"), "--dir", help="Dossier du site construit."),
    port: int = typer.Option(8000, "--port", help="Port (sur 127.0.0.1 uniquement)."),
) -> None:
    """Prévisualiser le site construit sur http://127.0.0.1:PORT/ (Ctrl+C pour arrêter)."""
    from preau.website.serve import serve

    try:
        serve(site_dir, port, announce=lambda url: out.print(f"{url}  (Ctrl+C)"))
    except PreauError as exc:
        fail(exc)
    except OSError as exc:
        console.print(f"Port {port} : {exc}" if lang() == "fr" else f"Port {port}: {exc}")
        raise typer.Exit(code=2)
    except KeyboardInterrupt:
        pass


def _progress_runner(fn, *args, **kwargs):
    """Run a pipeline function with a spinner showing its current step (on stderr)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("…", total=None)

        def progress(message: str) -> None:
            bar.update(task, description=message)
            console.print(f"[dim]·[/dim] {message}", highlight=False)

        return fn(*args, progress=progress, **kwargs)


@app.command("audit")
def audit_cmd(
    path: Path = typer.Argument(Path("."), help="Espace de travail (lit _build/data/), dossier de construction, "
                                               "ou dossier de CSV avec disclosure-tables.json."),
    as_json: bool = typer.Option(False, "--json", help="Rapport en JSON."),
) -> None:
    """Auditer le secret statistique : pour chaque cellule masquée, l'attaquant (programmation linéaire,
    HiGHS) cherche son minimum et son maximum d'après toutes les cellules publiées et les sommes qui
    les lient. Code de sortie 0 seulement si toutes les cellules sont protégées (écart ≥ largeur de
    protection, ou cellule que l'attaquant situe tout entière au-dessus du seuil k), 1 sinon (cellules
    nommées), 2 si l'entrée est invalide.
    """
    from preau.disclosure.files import audit_folder

    try:
        report = audit_folder(path)
    except PreauError as exc:
        fail(exc, as_json)
        return
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    elif report.ok:
        msg = ("Audit réussi : {n} cellule(s) masquée(s), toutes protégées ({b} blocs, {s:.1f} s)."
               if lang() == "fr" else "Audit passed: {n} hidden cell(s), all protected ({b} blocks, {s:.1f} s).")
        out.print(msg.format(n=report.cells_hidden, b=report.blocks, s=report.seconds))
    else:
        title = "Audit échoué" if lang() == "fr" else "Audit failed"
        console.print(f"[bold red]{title}[/bold red]")
        for problem in report.to_report().problems:
            console.print("  " + problem.render(lang()), markup=False, highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)


@app.command("build")
def build_cmd(
    workspace: Path = typer.Argument(Path("."), help="Espace de travail (publishers/, datasets/, schemas/)."),
    out_dir: Path = typer.Option(Path("_build"), "--out", help="Dossier de sortie (les tableaux vont dans OUT/data)."),
    publisher: Optional[list[str]] = typer.Option(None, "--publisher", "-p", help="Seulement cet éditeur (répétable)."),
    as_json: bool = typer.Option(False, "--json", help="Résumé en JSON."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Ne pas garder ni relire les références préparées "
                                  "(OUT/cache : BAN, couches des secteurs et des communes ; données publiques "
                                  "seulement) / do not keep or reuse the prepared references."),
) -> None:
    """Construire les tableaux de chaque éditeur : lecture des exports, géocodage hors ligne, agrégation,
    secret statistique (masquage primaire et secondaire, audit par programmation linéaire), validation.

    Rien n'est écrit si un export est invalide ; un tableau qui échoue à l'audit ou à son schéma arrête
    la construction avec son rapport. Les références préparées (BAN normalisée, couches des secteurs et
    des communes : aucune donnée personnelle) sont gardées dans OUT/cache et relues à la construction
    suivante si leurs fichiers n'ont pas changé. Exemple : preau build . --out _build
    """
    from preau.pipeline import build

    try:
        result = _progress_runner(build, workspace, out_dir, publishers=publisher or None, cache=not no_cache)
    except PreauError as exc:
        fail(exc, as_json)
        return
    summary = [{"publisher": o.publisher, "dataset": o.dataset, "folder": str(o.folder),
                "disclosure": o.manifest.get("disclosure")} for o in result.outputs]
    if as_json:
        print(json.dumps({"pupils": result.pupils, "timings": result.timings, "outputs": summary,
                          "warnings": [p.to_dict() for p in result.report.warnings]},
                         ensure_ascii=False, indent=2))
        return
    _print_outputs(result)
    _print_warnings(result.report)


def _print_warnings(report) -> None:
    """The warnings of a run that succeeded (a repaired layer, BAN rows without coordinates…)."""
    if not report.warnings:
        return
    title = "Avertissements" if lang() == "fr" else "Warnings"
    console.print(f"[bold yellow]{title}[/bold yellow]")
    for problem in report.warnings:
        console.print("  " + problem.render(lang()), markup=False, highlight=False, soft_wrap=True)


def _print_outputs(result) -> None:
    from rich.table import Table

    fr = lang() == "fr"
    table = Table(title="Tableaux produits" if fr else "Tables produced")
    for col in (("Éditeur", "Publisher"), ("Jeu de données", "Dataset"), ("Cellules", "Cells"),
                ("Masquées", "Hidden"), ("Élèves masqués", "Pupils hidden"), ("Audit", "Audit")):
        table.add_column(col[0] if fr else col[1])
    for o in result.outputs:
        d = o.manifest.get("disclosure") or {}
        table.add_row(o.publisher, o.dataset, str(d.get("cells", "")), str(d.get("cells_hidden", "")),
                      str(d.get("pupils_hidden", "")), str(d.get("audit", "—")))
    out.print(table)
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    out.print(("{n} élèves lus ; " if fr else "{n} pupil rows read; ").format(n=result.pupils) + timings)


@app.command("demo")
def demo_cmd(
    out_dir: Path = typer.Option(Path("_build"), "--out", help="Dossier de sortie (le territoire fictif va "
                                 "toujours dans _build/synth, où publishers/demo-65.toml le lit)."),
    seed: int = typer.Option(2026, "--seed", help="Graine du territoire fictif."),
) -> None:
    """Démonstration complète sur un territoire fictif (Hautes-Pyrénées) : synth → build → catalogue
    local → site statique, dans _build/. Ouvrez ensuite _build/site/index.html (ou « preau serve »)."""
    from preau.pipeline import demo

    try:
        result = _progress_runner(demo, ".", out_dir, seed=seed)
    except PreauError as exc:
        fail(exc)
        return
    _print_outputs(result.build)
    _print_warnings(result.build.report)
    fr = lang() == "fr"
    out.print(("Terminé en {s:.0f} s. " if fr else "Done in {s:.0f} s. ").format(s=sum(result.timings.values()))
              + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    where = [(out_dir / "synth", "territoire fictif (exports ONDE, adresses BAN, écoles, carte scolaire)",
              "synthetic territory (ONDE exports, BAN addresses, schools, school map)"),
             (out_dir / "data", "tableaux protégés, couches géographiques, rapports", "protected tables, layers, reports"),
             (out_dir / "catalog", "catalogue local (paquets de données, DCAT-AP)", "local catalog (data packages, DCAT-AP)"),
             (out_dir / "site" / "index.html", "site statique — « preau serve » pour le prévisualiser",
              "static site — 'preau serve' to preview it")]
    for path, f, e in where:
        out.print(f"  {path}  {f if fr else e}")


# Set by a command once its output is written and nothing is left to do but free memory: freeing a
# large validated table object by object at interpreter exit costs ~0.1 s of CPU for nothing.
_EXIT_NOW = {"ok": False}


def main() -> None:
    """Entry point: run the app, turning any user error into a message and an exit code."""
    _EXIT_NOW["ok"] = False
    try:
        app()
    except SystemExit as exc:
        if _EXIT_NOW["ok"] and isinstance(exc.code, (int, type(None))):
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except (OSError, ValueError):
                raise exc from None
            os._exit(exc.code or 0)
        raise
    except PreauError as exc:  # raised outside a command's own handler
        try:
            fail(exc)
        except typer.Exit as e:
            sys.exit(e.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
