"""Runs inside the addok virtualenv (not Préau's): times addok searches on a CSV of addresses.

usage: python addok_worker.py INPUT.csv OUTPUT.csv WORKERS
INPUT has columns adresse, code_postal, commune (UTF-8, ','). OUTPUT gets result_type, result_score,
result_id, result_citycode, longitude, latitude. Prints {"seconds": …, "rows": …} as JSON.
"""

import csv
import json
import sys
import time
from multiprocessing import Pool


def _init():
    from addok.config import config

    config.load()


def _one(row):
    from addok.core import search

    q = " ".join(v for v in (row["adresse"], row["code_postal"], row["commune"]) if v)
    try:
        res = search(q, limit=1, autocomplete=False)
    except Exception:
        res = []
    if not res:
        return ("", "0", "", "", "", "")
    feat = res[0].format()  # GeoJSON feature, as addok's HTTP API returns it
    props = feat.get("properties", {})
    lon, lat = (feat.get("geometry") or {}).get("coordinates", ["", ""])
    return (props.get("type", ""), f"{props.get('score', 0):.4f}", props.get("id", ""), props.get("citycode", ""), lon, lat)


def main():
    src, dst, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(src, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    start = time.perf_counter()
    with Pool(workers, initializer=_init) as pool:
        out = pool.map(_one, rows, chunksize=200)
    seconds = time.perf_counter() - start
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["result_type", "result_score", "result_id", "result_citycode", "longitude", "latitude"])
        w.writerows(out)
    print(json.dumps({"seconds": seconds, "rows": len(rows)}))


if __name__ == "__main__":
    main()
