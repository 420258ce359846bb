"""addok configuration used by bench/bench_geo.py (BAN-like: addok-fr + addok-france + addok-csv).

Loaded by addok through ADDOK_CONFIG_MODULE; Redis host/port come from REDIS_HOST / REDIS_PORT.
"""

import os
from pathlib import Path

import addok_fr

REDIS = {
    "host": os.environ.get("REDIS_HOST", "127.0.0.1"),
    "port": int(os.environ.get("REDIS_PORT", "6399")),
    "unix_socket_path": None,
    "indexes": {"db": 0},
    "documents": {"db": 1},
}
BATCH_WORKERS = int(os.environ.get("ADDOK_WORKERS", "2"))
SYNONYMS_PATHS = [str(Path(addok_fr.__file__).parent / "resources" / "synonyms.txt")]
FILTERS = ["type", "postcode", "citycode"]
QUERY_PROCESSORS_PYPATHS = [
    "addok.helpers.text.check_query_length",
    "addok_france.extract_address",
    "addok_france.clean_query",
    "addok_france.remove_leading_zeros",
]
SEARCH_RESULT_PROCESSORS_PYPATHS = [
    "addok.helpers.results.match_housenumber",
    "addok_france.make_labels",
    "addok.helpers.results.score_by_importance",
    "addok.helpers.results.score_by_autocomplete_distance",
    "addok.helpers.results.score_by_ngram_distance",
    "addok.helpers.results.score_by_geo_distance",
    "addok.helpers.results.adjust_scores",
]
PROCESSORS_PYPATHS = [
    "addok.helpers.text.tokenize",
    "addok.helpers.text.normalize",
    "addok_france.glue_ordinal",
    "addok_france.fold_ordinal",
    "addok_france.flag_housenumber",
    "addok.helpers.text.synonymize",
    "addok_fr.phonemicize",
]
