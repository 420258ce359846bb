"""Preview the built site on 127.0.0.1 with the standard library's HTTP server (``preau serve``)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from typing import Callable

from preau.errors import PreauError, rel


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".json": "application/json", ".jsonld": "application/ld+json", ".geojson": "application/geo+json",
                      ".js": "text/javascript", ".svg": "image/svg+xml", ".ttl": "text/turtle",
                      ".parquet": "application/vnd.apache.parquet", ".gpkg": "application/geopackage+sqlite3",
                      ".fgb": "application/octet-stream", ".csv": "text/csv"}

    def log_message(self, format: str, *args: object) -> None:  # quiet: no request log on the console
        pass


def make_server(site_dir: Path, port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``site_dir`` bound to ``host:port`` (port 0: any free port)."""
    site_dir = Path(site_dir)
    if not (site_dir / "index.html").is_file():
        raise PreauError(f"site introuvable : {rel(site_dir)} (lancez d'abord « preau site build »)",
                         f"site not found: {rel(site_dir)} (run 'preau site build' first)", code="site-missing",
                         file=rel(site_dir))
    handler = functools.partial(_Handler, directory=str(site_dir))
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve(site_dir: Path, port: int = 8000, *, background: bool = False,
          announce: Callable[[str], None] | None = None) -> http.server.ThreadingHTTPServer:
    """Serve ``site_dir`` on 127.0.0.1; blocks unless ``background`` (then returns the running server).

    ``announce`` receives the URL once the port is bound."""
    server = make_server(site_dir, port)
    if announce is not None:
        announce(f"http://127.0.0.1:{server.server_address[1]}/")
    if background:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return server
