"""Statistical disclosure control for published count tables.

- :class:`Hierarchy`, :class:`CountTable`, :class:`Policy` describe the tables;
- :func:`protect` applies primary + secondary suppression to all tables of a build together
  (linked tables, hierarchies, earlier published versions) and proves it with the audit;
- :func:`audit` is the attacker's LP audit of published-form tables (the proof);
- :func:`audit_folder` audits a build folder / a folder of CSVs (``preau audit``).

See ``docs/disclosure.md``.
"""

from preau.disclosure.attack import AuditReport, UnprotectedCell, audit
from preau.disclosure.hierarchy import ROOT, CountTable, Hierarchy, Policy
from preau.disclosure.suppress import ProtectedTable, ProtectionStats, protect, verify

__all__ = ["ROOT", "AuditReport", "CountTable", "Hierarchy", "Policy", "ProtectedTable", "ProtectionStats",
           "UnprotectedCell", "audit", "protect", "verify"]
