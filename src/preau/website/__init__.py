"""Static documentation site generated from the local file catalog (``preau site build``).

Not named ``site`` (a standard-library module). Templates live in ``templates/`` and can be
overridden by a template of the same name in the workspace's top-level ``site/`` folder.
"""

from preau.website.build import SiteResult, build_site
from preau.website.serve import serve

__all__ = ["SiteResult", "build_site", "serve"]
