"""Packaging stage: Frictionless Data Packages + DCAT-AP 3 metadata from the build output.

Entry point: :func:`build_packages` (``_build/data`` manifests -> ``_build/packages/<name>/``).
"""

from preau.package.build import (
    DCAT_FILE,
    DESCRIPTOR,
    Package,
    PackageFile,
    PackageResult,
    build_packages,
    load_packages,
)

__all__ = ["DCAT_FILE", "DESCRIPTOR", "Package", "PackageFile", "PackageResult", "build_packages", "load_packages"]
