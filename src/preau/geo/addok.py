"""Adapter to a running addok server (the BAN geocoder) for publishers who run one.

Uses ``/search/csv/`` (addok-csv plugin) for batches and ``/search/`` for single queries, and returns
the same columns as :func:`preau.geo.geocode.geocode`. Only point this at a server you control:
addresses are personal data and must not go to an outside service.
"""

from __future__ import annotations

import io
from typing import Mapping

import numpy as np
import polars as pl

from preau.errors import PreauError
from preau.geo.geocode import DEFAULT_COLUMNS

_OUT = ["result_type", "result_score", "result_code_insee", "result_id", "x", "y", "lon", "lat"]


class AddokClient:
    """A small client for an addok HTTP API (``http://127.0.0.1:7878`` for a local one)."""

    def __init__(self, url: str, timeout: float = 600.0):
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _fail(self, exc: Exception) -> PreauError:
        return PreauError(f"serveur addok injoignable ou en erreur ({self.url}) : {type(exc).__name__}",
                          f"addok server unreachable or failing ({self.url}): {type(exc).__name__}", code="geo-addok")

    def search(self, q: str, citycode: str | None = None, postcode: str | None = None, limit: int = 1) -> dict | None:
        """The best feature for one query (GeoJSON feature dict) or None."""
        params = {"q": q, "limit": limit}
        if citycode:
            params["citycode"] = citycode
        if postcode:
            params["postcode"] = postcode
        try:
            r = self.session.get(f"{self.url}/search/", params=params, timeout=self.timeout)
            r.raise_for_status()
        except Exception as exc:
            raise self._fail(exc) from None
        feats = r.json().get("features") or []
        return feats[0] if feats else None

    def geocode(self, frame: pl.DataFrame, columns: Mapping[str, str] | None = None, filter_city: bool = True,
                batch: int = 50_000) -> pl.DataFrame:
        """Geocode a frame through ``/search/csv/``; same output columns as the offline geocoder."""
        cols = {**DEFAULT_COLUMNS, **(columns or {})}
        send = [c for c in (cols["adresse"], cols["code_postal"], cols["commune"], cols["code_insee"]) if c in frame.columns]
        parts = []
        for start in range(0, frame.height, batch):
            chunk = frame.slice(start, batch).select(send)
            buf = io.BytesIO()
            chunk.write_csv(buf)
            data = [("columns", cols["adresse"])]
            if cols["commune"] in chunk.columns:
                data.append(("columns", cols["commune"]))
            # Filters in the query string: addok-csv 1.1 fails (HTTP 500) on filters sent as form fields.
            params = {}
            if filter_city and cols["code_insee"] in chunk.columns:
                params["citycode"] = cols["code_insee"]
            elif cols["code_postal"] in chunk.columns:
                params["postcode"] = cols["code_postal"]
            try:
                r = self.session.post(f"{self.url}/search/csv/", data=data, params=params,
                                      files={"data": ("adresses.csv", buf.getvalue(), "text/csv")}, timeout=self.timeout)
                r.raise_for_status()
            except Exception as exc:
                raise self._fail(exc) from None
            parts.append(pl.read_csv(io.BytesIO(r.content), infer_schema=False))
        res = pl.concat(parts) if parts else pl.DataFrame()
        return _to_results(res)


def _to_results(res: pl.DataFrame) -> pl.DataFrame:
    from pyproj import Transformer

    get = lambda c: pl.col(c) if c in res.columns else pl.lit(None, pl.Utf8)  # noqa: E731
    out = res.select(
        get("result_type").fill_null("not_found").replace("", "not_found").alias("result_type"),
        get("result_score").cast(pl.Float64, strict=False).fill_null(0.0).alias("result_score"),
        # result_citycode when the server's CSV_EXTRA_FIELDS has it, else the INSEE prefix of a BAN id.
        pl.coalesce(get("result_citycode"), get("result_id").str.extract(r"^(\d[\dAB]\d{3})_")).alias("result_code_insee"),
        get("result_id").alias("result_id"),
        get("longitude").cast(pl.Float64, strict=False).alias("lon"),
        get("latitude").cast(pl.Float64, strict=False).alias("lat"),
    )
    lon, lat = out["lon"].to_numpy(), out["lat"].to_numpy()
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True).transform(lon, lat)
    x = np.where(np.isfinite(lon), x, np.nan)
    y = np.where(np.isfinite(lat), y, np.nan)
    out = out.with_columns(pl.Series("x", x).fill_nan(None), pl.Series("y", y).fill_nan(None))
    return out.select(_OUT)


def ban_to_addok(ban: pl.DataFrame, path) -> int:
    """BAN CSV rows (as read, text columns) → addok's import format: one street document per line with
    its housenumbers (``addok batch FILE`` then ``addok ngrams``). Returns the number of streets."""
    import json
    from pathlib import Path

    streets = ban.group_by(["code_insee", "nom_voie"], maintain_order=True).agg(
        pl.col("id").first().alias("sid"), pl.col("code_postal").first(), pl.col("nom_commune").first(),
        pl.col("lon").cast(pl.Float64).mean(), pl.col("lat").cast(pl.Float64).mean(),
        pl.col("numero"), pl.col("rep").fill_null(""), pl.col("id").alias("ids"),
        pl.col("lon").cast(pl.Float64).alias("lons"), pl.col("lat").cast(pl.Float64).alias("lats"))
    with Path(path).open("w", encoding="utf-8") as fh:
        for k, r in enumerate(streets.iter_rows(named=True)):
            hn = {f"{num} {rep}".strip(): {"id": i, "lon": lo, "lat": la}
                  for num, rep, i, lo, la in zip(r["numero"], r["rep"], r["ids"], r["lons"], r["lats"])}
            doc = {"id": f"{r['code_insee']}_s{k:06d}", "type": "street", "name": r["nom_voie"],
                   "postcode": r["code_postal"], "citycode": r["code_insee"], "city": r["nom_commune"],
                   "lon": r["lon"], "lat": r["lat"], "importance": 0.5, "housenumbers": hn}
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return streets.height
