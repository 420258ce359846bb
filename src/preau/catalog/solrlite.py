"""solrlite: a small HTTP service speaking the part of the Solr protocol that CKAN 2.12 uses.

**Test and development index only — this is not Solr.** No stemming, no analyzers beyond
lower-casing and accent folding, crude ranking. Production CKAN points ``solr_url`` at Solr 9.

It exists because CKAN 2.12 indexes synchronously into Solr (``package_create`` fails without an
answering Solr) and Solr cannot be installed on the project's machines. Standard library only:
``http.server`` for HTTP, ``sqlite3`` for storage, FTS5 for the full-text ``text`` field.

Served under ``/solr/<core>/`` (any core name; a core is created on first use):

- ``update`` (POST): JSON list of documents, JSON command object (``add``/``delete``/``commit``),
  or XML ``<add><doc>…``, ``<delete><id>…</id><query>…</query></delete>``, ``<commit/>``.
  Writes are visible at once (commit is accepted and ignored).
- ``select`` (GET or POST form): ``q``, repeated ``fq``, ``rows``, ``start``, ``sort``, ``fl``,
  ``facet``, ``facet.field``, ``facet.limit``, ``facet.mincount``, ``facet.sort``, ``defType``
  (lucene / dismax / edismax), ``qf``, ``mm``, ``q.op``, ``df``; JSON answers only.
- ``schema?wt=schema.xml``, ``schema/name``, ``admin/file?file=schema.xml``: a schema named
  ``ckan-2.12`` (CKAN checks the name at start-up).
- ``admin/ping``.

Query language: the Lucene subset CKAN and its users send: ``field:value``, ``"phrases"``,
``AND OR NOT && || !``, ``+``/``-``, groups ``( )``, ``field:( … )``, ranges ``[a TO b]``/``{a TO b}``
(strings, numbers, dates with ``NOW±nUNIT`` and ``/UNIT``), ``*:*``, ``field:*``, wildcards
``*``/``?`` in terms, ``^boost`` (used for ranking only); fuzzy ``~`` is accepted and ignored.

Run: ``python -m preau.catalog.solrlite --port 8983 --db PATH``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import re
import sqlite3
import sys
import threading
import time
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

SCHEMA_NAME = "ckan-2.12"

# --------------------------------------------------------------------------------------------
# Schema: field types of CKAN's Solr schema (ckan/config/solr/schema.xml, 2.12), own summary.
# --------------------------------------------------------------------------------------------
STRING, TEXT, INT, FLOAT, DATE, BOOL = "string", "text", "int", "float", "date", "boolean"

_FIELDS: dict[str, tuple[str, bool]] = {  # name -> (type, stored)
    "index_id": (STRING, True), "id": (STRING, True), "site_id": (STRING, True),
    "title": (TEXT, True), "title_ngram": (TEXT, True), "entity_type": (STRING, True),
    "dataset_type": (STRING, True), "state": (STRING, True), "name": (STRING, True),
    "name_ngram": (TEXT, True), "revision_id": (STRING, True), "version": (STRING, True),
    "url": (STRING, True), "ckan_url": (STRING, True), "download_url": (STRING, True),
    "notes": (TEXT, True), "author": (TEXT, True), "author_email": (TEXT, True),
    "maintainer": (TEXT, True), "maintainer_email": (TEXT, True), "license": (STRING, True),
    "license_id": (STRING, True), "tags": (STRING, True), "groups": (STRING, True),
    "organization": (STRING, True), "capacity": (STRING, True),
    "permission_labels": (STRING, False), "res_name": (TEXT, True),
    "res_description": (TEXT, True), "res_format": (STRING, True), "res_url": (STRING, True),
    "res_type": (STRING, True), "text": (TEXT, False), "urls": (TEXT, False),
    "depends_on": (TEXT, False), "dependency_of": (TEXT, False), "derives_from": (TEXT, False),
    "has_derivation": (TEXT, False), "links_to": (TEXT, False), "linked_from": (TEXT, False),
    "child_of": (TEXT, False), "parent_of": (TEXT, False), "views_total": (INT, False),
    "views_recent": (INT, False), "resources_accessed_total": (INT, False),
    "resources_accessed_recent": (INT, False), "metadata_created": (DATE, True),
    "metadata_modified": (DATE, True), "indexed_ts": (DATE, True),
    "title_string": (STRING, False), "data_dict": (STRING, True),
    "validated_data_dict": (STRING, True), "_version_": (STRING, True),
    "num_resources": (INT, True), "num_tags": (INT, True), "private": (BOOL, True),
}
# copyField: sources of the catch-all ``text`` and ``urls`` fields
_URL_SOURCES = ("url", "ckan_url", "download_url", "res_url")
_TEXT_SOURCES = ("name", "title", "text", "license", "notes", "tags", "groups", "organization",
                 "res_name", "res_description", "maintainer", "author")
_TEXT_PREFIXES = ("extras_", "res_extras_", "vocab_")


def field_type(name: str) -> tuple[str, bool]:
    if name in _FIELDS:
        return _FIELDS[name]
    if name.endswith("_date"):
        return DATE, True
    if name.startswith("extras_") or name.startswith("res_extras_"):
        return TEXT, True
    if name.startswith("vocab_"):
        return STRING, True
    return STRING, False  # <dynamicField name="*" type="string" stored="false"/>


def schema_xml() -> str:
    rows = [f'<schema name="{SCHEMA_NAME}" version="1.6">',
            "<!-- solrlite: test/dev index speaking the Solr protocol; not Solr -->", "<fields>"]
    for name, (typ, stored) in _FIELDS.items():
        rows.append(f'  <field name="{name}" type="{typ}" stored="{str(stored).lower()}"/>')
    rows += ["</fields>", "<uniqueKey>index_id</uniqueKey>", "</schema>", ""]
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# Text analysis (kept consistent with FTS5's ``unicode61 remove_diacritics 2`` tokenizer)
# --------------------------------------------------------------------------------------------
_TOKEN_RE = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", str(text))
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def tokenize(text: str) -> list[str]:
    return _TOKEN_RE.findall(fold(text))


def _values(doc: dict, name: str) -> list:
    v = doc.get(name)
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return [x for x in v if x is not None]
    return [v]


def _text_body(doc: dict) -> str:
    parts: list[str] = []
    for name in _URL_SOURCES + _TEXT_SOURCES:
        parts.extend(str(x) for x in _values(doc, name))
    for name in doc:
        if name.startswith(_TEXT_PREFIXES):
            parts.extend(str(x) for x in _values(doc, name))
    return "\n".join(parts)


def _field_values(doc: dict, name: str) -> list:
    if name == "text":
        return [_text_body(doc)]
    if name == "urls":
        return [x for n in _URL_SOURCES for x in _values(doc, n)]
    return _values(doc, name)


# --------------------------------------------------------------------------------------------
# Dates and date math
# --------------------------------------------------------------------------------------------
_UNITS = {"YEAR": "years", "YEARS": "years", "MONTH": "months", "MONTHS": "months",
          "DAY": "days", "DAYS": "days", "DATE": "days", "HOUR": "hours", "HOURS": "hours",
          "MINUTE": "minutes", "MINUTES": "minutes", "SECOND": "seconds", "SECONDS": "seconds",
          "MILLI": "ms", "MILLIS": "ms", "MILLISECOND": "ms", "MILLISECONDS": "ms"}
_MATH_RE = re.compile(r"([+-]\d+|/)([A-Z]+)")


def parse_date(text: str) -> datetime | None:
    text = str(text).strip()
    base, rest = text, ""
    if text.upper().startswith("NOW"):
        dt = datetime.now(timezone.utc)
        rest = text[3:]
    else:
        m = re.match(r"^(\d{4}-\d{2}-\d{2}(?:T[0-9:.]+)?Z?)(.*)$", text)
        if not m:
            return None
        base, rest = m.group(1), m.group(2)
        try:
            dt = datetime.fromisoformat(base.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
    for op, unit in _MATH_RE.findall(rest.upper()):
        unit = _UNITS.get(unit)
        if unit is None:
            return None
        if op == "/":
            dt = _round_down(dt, unit)
        else:
            dt = _add(dt, int(op), unit)
    return dt


def _round_down(dt: datetime, unit: str) -> datetime:
    if unit == "years":
        return dt.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "months":
        return dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "days":
        return dt.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "hours":
        return dt.replace(minute=0, second=0, microsecond=0)
    if unit == "minutes":
        return dt.replace(second=0, microsecond=0)
    if unit == "seconds":
        return dt.replace(microsecond=0)
    return dt


def _add(dt: datetime, n: int, unit: str) -> datetime:
    if unit in ("years", "months"):
        months = dt.year * 12 + (dt.month - 1) + (n * 12 if unit == "years" else n)
        year, month = divmod(months, 12)
        day = min(dt.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
                           31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month])
        return dt.replace(year=year, month=month + 1, day=day)
    if unit == "ms":
        return dt + timedelta(milliseconds=n)
    return dt + timedelta(**{unit: n})


# --------------------------------------------------------------------------------------------
# Lucene query parsing
# --------------------------------------------------------------------------------------------
class QueryError(ValueError):
    """A query the index cannot parse (answered as HTTP 400, like Solr)."""


MUST, SHOULD, MUST_NOT = "+", "", "-"
QF = "\x00qf"  # pseudo-field: an unfielded term of a dismax query, matched over qf


@dataclass
class Node:
    pass


@dataclass
class All(Node):
    pass


@dataclass
class Term(Node):
    field: str
    text: str
    wildcard: bool = False
    boost: float = 1.0


@dataclass
class Phrase(Node):
    field: str
    text: str
    boost: float = 1.0


@dataclass
class Range(Node):
    field: str
    low: str | None
    high: str | None
    incl_low: bool
    incl_high: bool
    boost: float = 1.0


@dataclass
class Bool(Node):
    clauses: list[tuple[str, Node]] = field(default_factory=list)
    min_should: int = 0
    boost: float = 1.0


_SPECIAL = set(' \t\r\n()[]{}"^:~')


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens: (kind, value); kinds: ( ) + - op term phrase range boost fuzzy colon."""
    toks: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "()":
            toks.append((c, c))
            i += 1
            continue
        if text.startswith("&&", i) or text.startswith("||", i):
            toks.append(("op", "AND" if c == "&" else "OR"))
            i += 2
            continue
        if c in "+-!":  # at the start of a token: a prefix operator
            toks.append(("!" if c == "!" else c, c))
            i += 1
            continue
        if c == ":":
            toks.append(("colon", ":"))
            i += 1
            continue
        if c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise QueryError("unterminated phrase")
            toks.append(("phrase", "".join(buf)))
            i = j + 1
            continue
        if c in "[{":
            j = i + 1
            while j < n and text[j] not in "]}":
                j += 1
            if j >= n:
                raise QueryError("unterminated range")
            toks.append(("range", text[i:j + 1]))
            i = j + 1
            continue
        if c in "^~":
            j = i + 1
            while j < n and (text[j].isdigit() or text[j] == "."):
                j += 1
            toks.append(("boost" if c == "^" else "fuzzy", text[i + 1:j]))
            i = j
            continue
        if c in ")]}":
            raise QueryError(f"unexpected {c!r}")
        j, buf, escaped = i, [], False
        while j < n and text[j] not in _SPECIAL:
            if text[j] == "\\" and j + 1 < n:
                buf.append("\\" + text[j + 1])
                escaped = True
                j += 2
                continue
            buf.append(text[j])
            j += 1
        word = "".join(buf)
        if word in ("AND", "OR") and not escaped:
            toks.append(("op", word))
        elif word == "NOT" and not escaped:
            toks.append(("!", "!"))
        else:
            toks.append(("term", word))
        i = j
    return toks


def _unescape(word: str) -> tuple[str, bool]:
    """Remove backslash escapes; tell whether unescaped * or ? remain (a wildcard term)."""
    out, wild, i = [], False, 0
    while i < len(word):
        c = word[i]
        if c == "\\" and i + 1 < len(word):
            nxt = word[i + 1]
            out.append("\\" + nxt if nxt in "*?" else nxt)
            i += 2
            continue
        if c in "*?":
            wild = True
        out.append(c)
        i += 1
    text = "".join(out)
    if not wild:
        text = text.replace("\\*", "*").replace("\\?", "?")
    return text, wild


class _Parser:
    def __init__(self, text: str, default_field: str, default_op: str) -> None:
        self.toks = _lex(text)
        self.pos = 0
        self.df = default_field
        self.op = default_op.upper()

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Bool:
        q = self.query(self.df)
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()[1]!r}")
        return q

    def query(self, fld: str) -> Bool:
        # Lucene's QueryParser.addClause rules (default operator AND or OR)
        clauses: list[list] = []
        while True:
            tok = self.peek()
            if tok is None or tok[0] == ")":
                break
            conj = None
            if tok[0] == "op":
                conj = self.take()[1]
                tok = self.peek()
                if tok is None:
                    raise QueryError("operator at end of query")
            mods = None
            if tok[0] in "+-!":
                mods = "-" if tok[0] == "!" else tok[0]
                self.take()
            node = self.clause(fld)
            if clauses and conj == "AND" and clauses[-1][0] != MUST_NOT:
                clauses[-1][0] = MUST
            if clauses and self.op == "AND" and conj == "OR" and clauses[-1][0] != MUST_NOT:
                clauses[-1][0] = SHOULD
            if self.op == "OR":
                prohibited = mods == "-"
                required = mods == "+" or (conj == "AND" and not prohibited)
            else:
                prohibited = mods == "-"
                required = not prohibited and conj != "OR"
            occur = MUST_NOT if prohibited else MUST if required else SHOULD
            clauses.append([occur, node])
        return Bool([(o, n) for o, n in clauses])

    def clause(self, fld: str) -> Node:
        tok = self.take()
        if tok[0] == "term" and self.peek() and self.peek()[0] == "colon":
            self.take()
            fld, _ = _unescape(tok[1])
            if fld == "_query_" or fld.startswith("{!"):
                raise QueryError("local parameters and magic fields are not supported")
            tok = self.take() if self.peek() else ("term", "")
        node: Node
        if tok[0] == "(":
            node = self.query(fld)
            if not self.peek() or self.take()[0] != ")":
                raise QueryError("missing )")
        elif tok[0] == "phrase":
            node = Phrase(fld, tok[1])
        elif tok[0] == "range":
            node = _range(fld, tok[1])
        elif tok[0] == "term":
            text, wild = _unescape(tok[1])
            if fld == "*" and text == "*":
                node = All()
            else:
                node = Term(fld, text, wild)
        else:
            raise QueryError(f"unexpected {tok[1]!r}")
        while self.peek() and self.peek()[0] in ("boost", "fuzzy"):
            kind, val = self.take()
            if kind == "boost":
                try:
                    node.boost = float(val)  # type: ignore[attr-defined]
                except (ValueError, AttributeError):
                    pass
        return node


def _range(fld: str, text: str) -> Range:
    m = re.match(r"^([\[{])\s*(\S+)\s+TO\s+(\S+)\s*([\]}])$", text)
    if not m:
        raise QueryError(f"bad range {text!r}")
    lo, hi = _unescape(m.group(2).strip('"'))[0], _unescape(m.group(3).strip('"'))[0]
    return Range(fld, None if lo == "*" else lo, None if hi == "*" else hi,
                 m.group(1) == "[", m.group(4) == "]")


def parse_lucene(text: str, default_field: str = "text", default_op: str = "OR") -> Bool:
    text = (text or "").strip()
    if text.startswith("{!"):
        raise QueryError("local parameters are not supported")
    return _Parser(text, default_field, default_op).parse()


def mm_required(spec: str | None, n: int) -> int:
    """Solr's ``mm`` (minimum should match) for ``n`` optional clauses."""
    if n == 0:
        return 0
    if not spec:
        return n

    def one(s: str) -> int:
        s = s.strip()
        if s.endswith("%"):
            p = int(s[:-1])
            k = math.floor(n * abs(p) / 100)
            return k if p >= 0 else n - k
        v = int(s)
        return v if v >= 0 else n + v

    spec = spec.strip()
    result = n
    if "<" not in spec:
        result = one(spec)
    else:
        for part in spec.split():
            cond, _, s = part.partition("<")
            if n > int(cond):
                result = one(s)
    return max(0, min(n, result))


def parse_dismax(q: str, qf: list[tuple[str, float]], mm: str | None, edismax: bool,
                 default_op: str) -> Bool:
    """dismax / edismax: unfielded terms are matched over ``qf``; ``mm`` for optional clauses."""
    q = (q or "").strip()
    if q in ("", "*", "*:*"):
        return Bool([(MUST, All())])
    if not edismax:  # dismax: only + - and "phrases" are syntax
        q = re.sub(r'([\\():\[\]{}^~!&|])', r"\\\1", q)
        q = re.sub(r"(?<![\w\\])(AND|OR|NOT)(?!\w)", r"\\\1", q)
    tree = _Parser(q, QF, "OR").parse()
    explicit_op = any(k == "op" for k, _ in _Parser(q, QF, "OR").toks)
    _QF_BY_TREE[id(tree)] = qf
    optional = [c for c in tree.clauses if c[0] == SHOULD]
    if explicit_op and edismax:
        tree.min_should = 1 if optional else 0
    elif mm is None and default_op.upper() == "AND":
        tree.min_should = len(optional)
    else:
        tree.min_should = mm_required(mm, len(optional))
    return tree


_QF_BY_TREE: dict[int, list[tuple[str, float]]] = {}


def parse_qf(text: str | None) -> list[tuple[str, float]]:
    out = []
    for part in (text or "text").split():
        name, _, boost = part.partition("^")
        out.append((name, float(boost) if boost else 1.0))
    return out


# --------------------------------------------------------------------------------------------
# Index (SQLite store + FTS5 for ``text``) and evaluation
# --------------------------------------------------------------------------------------------
class Core:
    def __init__(self, index: "Index", name: str) -> None:
        self.index = index
        self.name = name
        self.docs: dict[str, dict] = {}
        self._tokens: dict[str, dict[str, list[list[str]]]] = {}  # key -> field -> tokens
        for key, body in index.db.execute("SELECT key, doc FROM docs WHERE core=?", (name,)):
            self.docs[key] = json.loads(body)

    # ---- writes
    def add(self, docs: list[dict]) -> None:
        db = self.index.db
        for doc in docs:
            doc = {k: v for k, v in doc.items() if v is not None}
            key = doc.get("index_id") or doc.get("id")
            if key is None:
                raise QueryError("document is missing its unique key index_id")
            key = str(key)
            doc.setdefault("indexed_ts", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            doc["_version_"] = str(time.time_ns())
            self._drop_tokens(key)
            self.docs[key] = doc
            db.execute("INSERT OR REPLACE INTO docs(core, key, doc) VALUES (?,?,?)",
                       (self.name, key, json.dumps(doc, ensure_ascii=False)))
            db.execute("DELETE FROM fts WHERE core=? AND key=?", (self.name, key))
            db.execute("INSERT INTO fts(core, key, body) VALUES (?,?,?)",
                       (self.name, key, _text_body(doc)))
        db.commit()

    def delete_ids(self, ids: list[str]) -> int:
        keys = [k for k, d in self.docs.items() if k in ids or str(d.get("id")) in ids]
        self._delete(keys)
        return len(keys)

    def delete_query(self, q: str) -> int:
        keys = list(self.evaluate(parse_lucene(q, "text", "OR")).keys())
        self._delete(keys)
        return len(keys)

    def _delete(self, keys: list[str]) -> None:
        db = self.index.db
        for key in keys:
            self.docs.pop(key, None)
            self._drop_tokens(key)
            db.execute("DELETE FROM docs WHERE core=? AND key=?", (self.name, key))
            db.execute("DELETE FROM fts WHERE core=? AND key=?", (self.name, key))
        db.commit()

    def _drop_tokens(self, key: str) -> None:
        self._tokens.pop(key, None)

    # ---- matching
    def tokens(self, key: str, fld: str) -> list[list[str]]:
        cache = self._tokens.setdefault(key, {})
        if fld not in cache:
            cache[fld] = [tokenize(v) for v in _field_values(self.docs[key], fld)]
        return cache[fld]

    def _fts(self, expr: str) -> set[str]:
        try:
            rows = self.index.db.execute(
                "SELECT key FROM fts WHERE fts MATCH ? AND core=?", ("body : " + expr, self.name))
            return {r[0] for r in rows}
        except sqlite3.OperationalError as exc:
            raise QueryError(f"full-text query failed: {exc}") from exc

    def evaluate(self, node: Node, qf: list[tuple[str, float]] | None = None) -> dict[str, float]:
        """Map of matching document key -> score."""
        if isinstance(node, All):
            return dict.fromkeys(self.docs, 1.0)
        if isinstance(node, Bool):
            return self._bool(node, _QF_BY_TREE.get(id(node), qf))
        if node.field == QF:  # dismax: best field wins, others add ``tie``
            out: dict[str, float] = {}
            for name, boost in qf or [("text", 1.0)]:
                sub = type(node)(**{**node.__dict__, "field": name})
                for key, score in self.evaluate(sub).items():
                    s = score * boost
                    out[key] = max(out.get(key, 0.0), s) + 0.1 * min(out.get(key, s), s)
            return out
        if isinstance(node, Range):
            return self._range(node)
        typ, _ = field_type(node.field)
        if isinstance(node, Term) and node.wildcard and node.text == "*":
            return {k: node.boost for k in self.docs if _field_values(self.docs[k], node.field)}
        if typ == TEXT:
            return self._text(node)
        if isinstance(node, Term) and node.wildcard:
            rx = re.compile(_glob_regex(node.text), re.S)
            return {k: node.boost for k, d in self.docs.items()
                    if any(rx.fullmatch(str(v)) for v in _values(d, node.field))}
        want = node.text
        if typ in (INT, FLOAT):
            try:
                num = float(want)
            except ValueError:
                raise QueryError(f"{node.field}: a number was expected") from None
            return {k: node.boost for k, d in self.docs.items()
                    if any(_num(v) == num for v in _values(d, node.field))}
        if typ == DATE:
            when = parse_date(want)
            if when is None:
                raise QueryError(f"{node.field}: a date was expected")
            return {k: node.boost for k, d in self.docs.items()
                    if any(parse_date(v) == when for v in _values(d, node.field))}
        if typ == BOOL:
            want = want.lower()
        return {k: node.boost for k, d in self.docs.items()
                if any(_str(v) == want for v in _values(d, node.field))}

    def _text(self, node: Node) -> dict[str, float]:
        if isinstance(node, Term) and node.wildcard:
            rx = re.compile(_glob_regex(fold(node.text)), re.S)
            if node.field == "text" and re.fullmatch(r"[^\W_]+\*", fold(node.text)):
                keys = self._fts(f'"{fold(node.text)[:-1]}" *')
            else:
                keys = {k for k in self.docs
                        if any(rx.fullmatch(t) for ts in self.tokens(k, node.field) for t in ts)}
            return dict.fromkeys(keys, node.boost)
        words = tokenize(node.text)
        if not words:
            return {}
        if node.field == "text":
            keys = self._fts('"' + " ".join(words) + '"')
        else:
            keys = set(self.docs)
        out = {}
        for key in keys:
            count = sum(_count_seq(ts, words) for ts in self.tokens(key, node.field))
            if count:
                out[key] = node.boost * (1.0 + math.log(count))
        return out

    def _range(self, node: Range) -> dict[str, float]:
        typ, _ = field_type(node.field)
        conv = {INT: _num, FLOAT: _num, DATE: parse_date}.get(typ, _str)
        lo = None if node.low is None else conv(node.low)
        hi = None if node.high is None else conv(node.high)
        if (node.low is not None and lo is None) or (node.high is not None and hi is None):
            raise QueryError(f"{node.field}: bad range bound")
        out = {}
        for key, doc in self.docs.items():
            for v in _values(doc, node.field):
                x = conv(v)
                if x is None:
                    continue
                if lo is not None and (x < lo or (x == lo and not node.incl_low)):
                    continue
                if hi is not None and (x > hi or (x == hi and not node.incl_high)):
                    continue
                out[key] = node.boost
                break
        return out

    def _bool(self, node: Bool, qf) -> dict[str, float]:
        must = [self.evaluate(n, qf) for o, n in node.clauses if o == MUST]
        should = [self.evaluate(n, qf) for o, n in node.clauses if o == SHOULD]
        must_not = [self.evaluate(n, qf) for o, n in node.clauses if o == MUST_NOT]
        if must:
            keys = set(must[0])
            for m in must[1:]:
                keys &= set(m)
        elif should:
            keys = set().union(*should)
        else:
            keys = set(self.docs)  # a purely negative query matches all minus the negatives
        need = node.min_should if (must or node.min_should) else (1 if should else 0)
        if need:
            keys = {k for k in keys if sum(k in s for s in should) >= need}
        for n in must_not:
            keys -= set(n)
        out = {}
        for k in keys:
            score = sum(m[k] for m in must) + sum(s.get(k, 0.0) for s in should)
            out[k] = (score or 1.0) * node.boost
        return out

    # ---- select
    def select(self, params: list[tuple[str, str]]) -> dict:
        p: dict[str, list[str]] = {}
        for k, v in params:
            p.setdefault(k, []).append(v)

        def one(name: str, default=None):
            return p[name][-1] if name in p else default

        q = one("q", "*:*") or "*:*"
        q_op = one("q.op", "OR")
        def_type = one("defType", "lucene")
        df = one("df", "text")
        started = time.perf_counter()
        if def_type in ("dismax", "edismax"):
            tree = parse_dismax(q, parse_qf(one("qf")), one("mm"), def_type == "edismax", q_op)
        elif def_type == "lucene":
            tree = parse_lucene(q, df, q_op)
        else:
            raise QueryError(f"unsupported defType {def_type!r}")
        try:
            scores = self.evaluate(tree)
            for fq in p.get("fq", []):
                if fq.strip():
                    keep = self.evaluate(parse_lucene(fq, df, q_op))
                    scores = {k: s for k, s in scores.items() if k in keep}
        finally:
            _QF_BY_TREE.pop(id(tree), None)
        keys = self._sort(list(scores), scores, one("sort", "score desc"))
        start, rows = int(one("start", 0) or 0), int(one("rows", 10) or 0)
        fl = _parse_fl(one("fl", "*"))
        docs = [self._project(k, scores[k], fl) for k in keys[start:start + rows]]
        out = {"responseHeader": {"status": 0, "QTime": int((time.perf_counter() - started) * 1000),
                                  "params": {k: (v if len(v) > 1 else v[0]) for k, v in p.items()}},
               "response": {"numFound": len(keys), "start": start, "numFoundExact": True,
                            "docs": docs}}
        if one("facet", "false") == "true":
            out["facet_counts"] = {"facet_queries": {}, "facet_fields": self._facets(keys, p),
                                   "facet_ranges": {}, "facet_intervals": {}, "facet_heatmaps": {}}
        return out

    def _sort(self, keys: list[str], scores: dict[str, float], spec: str) -> list[str]:
        keys.sort()  # stable base order
        for part in reversed([s.strip() for s in (spec or "").split(",") if s.strip()]):
            bits = part.split()
            if len(bits) != 2 or bits[1].lower() not in ("asc", "desc"):
                raise QueryError(f"Can't determine a Sort Order (asc or desc) in sort spec {part!r}")
            name, desc = bits[0], bits[1].lower() == "desc"
            if name == "score":
                keys.sort(key=lambda k: scores[k], reverse=desc)
                continue
            typ, _ = field_type(name)
            conv = {INT: _num, FLOAT: _num, DATE: parse_date}.get(typ, _str)
            present, missing = [], []
            for k in keys:
                vals = [conv(v) for v in _values(self.docs[k], name)]
                vals = [v for v in vals if v is not None]
                (present if vals else missing).append((vals[0] if vals else None, k))
            present.sort(key=lambda t: t[0], reverse=desc)  # missing values always last
            keys[:] = [k for _, k in present] + [k for _, k in missing]
        return keys

    def _project(self, key: str, score: float, fl: list[str]) -> dict:
        doc = self.docs[key]
        out = {}
        for name, value in doc.items():
            stored = field_type(name)[1]
            if stored and any(pat == "*" or fnmatch.fnmatchcase(name, pat) for pat in fl):
                out[name] = value
        if "score" in fl:
            out["score"] = score
        return out

    def _facets(self, keys: list[str], p: dict[str, list[str]]) -> dict:
        def opt(fld: str, name: str, default):
            for k in (f"f.{fld}.facet.{name}", f"facet.{name}"):
                if k in p:
                    return p[k][-1]
            return default

        result = {}
        for fld in p.get("facet.field", []):
            typ, _ = field_type(fld)
            limit = int(opt(fld, "limit", 100))
            mincount = int(opt(fld, "mincount", 0))
            order = opt(fld, "sort", "count" if limit > 0 else "index")
            counts: dict[str, int] = {}
            for k in keys:
                vals = set(t for ts in self.tokens(k, fld) for t in ts) if typ == TEXT else \
                    {_str(v) for v in _values(self.docs[k], fld)}
                for v in vals:
                    counts[v] = counts.get(v, 0) + 1
            if mincount == 0:
                for k in self.docs:
                    for v in _values(self.docs[k], fld):
                        counts.setdefault(_str(v), 0)
            items = [(v, c) for v, c in counts.items() if c >= mincount]
            items.sort(key=lambda t: t[0])
            if order == "count":
                items.sort(key=lambda t: -t[1])
            if limit >= 0:
                items = items[:limit]
            result[fld] = [x for pair in items for x in pair]
        return result


def _parse_fl(text: str) -> list[str]:
    parts = [s for s in re.split(r"[,\s]+", text or "*") if s]
    return parts or ["*"]


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return "".join(out)


def _count_seq(tokens: list[str], words: list[str]) -> int:
    n = len(words)
    if n == 1:
        return tokens.count(words[0])
    return sum(1 for i in range(len(tokens) - n + 1) if tokens[i:i + n] == words)


def _num(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _str(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Index:
    """All cores of one SQLite file; one lock serialises requests."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS docs (core TEXT, key TEXT, doc TEXT, "
                        "PRIMARY KEY (core, key))")
        self.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(core UNINDEXED, "
                        "key UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2')")
        self.db.commit()
        self.cores: dict[str, Core] = {}
        self.lock = threading.Lock()

    def core(self, name: str) -> Core:
        if name not in self.cores:
            self.cores[name] = Core(self, name)
        return self.cores[name]

    # ---- update messages
    def update(self, core: Core, body: bytes, content_type: str) -> None:
        text = body.decode("utf-8") if body else ""
        stripped = text.lstrip()
        if not stripped:
            return
        if stripped[0] == "<":
            self._update_xml(core, stripped)
        else:
            try:
                msg = json.loads(stripped, object_pairs_hook=lambda pairs: pairs)
            except json.JSONDecodeError as exc:
                raise QueryError(f"bad JSON: {exc}") from exc
            self._update_json(core, msg)

    def _update_json(self, core: Core, msg) -> None:
        def plain(x):
            if isinstance(x, list) and all(isinstance(i, tuple) and len(i) == 2 for i in x) and x:
                return {k: plain(v) for k, v in x}
            if isinstance(x, list):
                return [plain(i) for i in x]
            return x

        if isinstance(msg, list) and msg and not all(isinstance(i, tuple) for i in msg):
            core.add([plain(d) for d in msg])  # [doc, doc, ...]
            return
        if isinstance(msg, list) and not msg:
            return
        for cmd, arg in msg:  # {"add": {"doc": …}, "delete": …, "commit": {}}
            if cmd == "add":
                arg = plain(arg)
                core.add([arg.get("doc", arg)] if isinstance(arg, dict) else arg)
            elif cmd == "delete":
                arg = plain(arg)
                items = arg if isinstance(arg, list) else [arg]
                for item in items:
                    if isinstance(item, dict) and "query" in item:
                        core.delete_query(item["query"])
                    elif isinstance(item, dict) and "id" in item:
                        core.delete_ids([str(item["id"])])
                    else:
                        core.delete_ids([str(item)])
            elif cmd in ("commit", "optimize", "rollback"):
                pass
            else:
                raise QueryError(f"unknown update command {cmd!r}")

    def _update_xml(self, core: Core, text: str) -> None:
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise QueryError(f"bad XML: {exc}") from exc
        elems = [root] if root.tag != "update" else list(root)
        for el in elems:
            if el.tag == "add":
                docs = []
                for d in el.findall("doc"):
                    doc: dict = {}
                    for f in d.findall("field"):
                        name, val = f.get("name"), f.text or ""
                        if name in doc:
                            doc[name] = (doc[name] if isinstance(doc[name], list) else [doc[name]]) + [val]
                        else:
                            doc[name] = val
                    docs.append(doc)
                core.add(docs)
            elif el.tag == "delete":
                ids = [i.text or "" for i in el.findall("id")]
                if ids:
                    core.delete_ids(ids)
                for qel in el.findall("query"):
                    core.delete_query(qel.text or "")
            elif el.tag in ("commit", "optimize", "rollback"):
                pass
            else:
                raise QueryError(f"unknown update element <{el.tag}>")


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    server_version = "solrlite/1"
    index: Index  # set by make_server

    def log_message(self, fmt, *args):  # quiet; no request logging
        pass

    def do_GET(self):
        self._handle(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length) if length else b"")

    def _send(self, code: int, body, ctype="application/json; charset=utf-8") -> None:
        data = body if isinstance(body, bytes) else (
            body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8"))
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int, msg: str) -> None:
        self._send(code, {"responseHeader": {"status": code, "QTime": 0},
                          "error": {"msg": msg, "code": code}})

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        params = parse_qsl(url.query, keep_blank_values=True)
        ctype = self.headers.get("Content-Type", "")
        parts = [s for s in url.path.split("/") if s]
        if parts[:1] == ["solr"]:
            parts = parts[1:]
        if not parts:
            return self._send(200, {"solrlite": True, "note": "test/dev index, not Solr"})
        if parts[0] == "admin":  # /solr/admin/cores, /solr/admin/info/system
            return self._send(200, {"responseHeader": {"status": 0},
                                    "status": {n: {"name": n} for n in self.index.cores}})
        core_name, action = parts[0], "/".join(parts[1:])
        if body and ctype.startswith("application/x-www-form-urlencoded"):
            params += parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            body = b""
        try:
            with self.index.lock:
                core = self.index.core(core_name)
                if action == "select":
                    return self._send(200, core.select(params))
                if action in ("update", "update/json", "update/json/docs", "update/xml"):
                    self.index.update(core, body, ctype)
                    return self._send(200, {"responseHeader": {"status": 0, "QTime": 0}})
                if action == "admin/ping":
                    return self._send(200, {"responseHeader": {"status": 0}, "status": "OK"})
                if action in ("schema", "admin/file"):
                    if dict(params).get("wt") == "json" and action == "schema":
                        return self._send(200, {"schema": {"name": SCHEMA_NAME, "version": 1.6}})
                    return self._send(200, schema_xml(), "application/xml; charset=utf-8")
                if action == "schema/name":
                    return self._send(200, {"responseHeader": {"status": 0}, "name": SCHEMA_NAME})
                return self._error(404, f"unknown handler /{action}")
        except (QueryError, ValueError) as exc:
            return self._error(400, str(exc))


def make_server(db_path: str, host: str = "127.0.0.1", port: int = 8983) -> ThreadingHTTPServer:
    index = Index(db_path)
    handler = type("BoundHandler", (Handler,), {"index": index})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m preau.catalog.solrlite",
                                 description="Solr-protocol test/dev index for CKAN (not Solr).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8983)
    ap.add_argument("--db", required=True, help="SQLite file holding every core")
    args = ap.parse_args(argv)
    server = make_server(args.db, args.host, args.port)
    print(f"solrlite on http://{args.host}:{server.server_address[1]}/solr/<core> "
          f"(test/dev index, not Solr)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
