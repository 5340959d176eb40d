"""The console's socket and uvicorn: bound before the application is made, so that a port chosen by the system
(`--port 0`) is known for the Host and Origin checks and the address printed."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from pipelines.console.app import Site

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp


def listen(site: Site) -> tuple[socket.socket, Site]:
    """A socket listening where `site` says, and the site with the port it got (OSError when it cannot)."""
    family = socket.AF_INET6 if ":" in site.host else socket.AF_INET
    sock = socket.create_server((site.host.strip("[]"), site.port), family=family, reuse_port=False)
    return sock, Site(site.host, sock.getsockname()[1])


def server(app: ASGIApp) -> uvicorn.Server:
    """uvicorn for one process on a socket of `listen`: no access log (the pages are the record), no Server
    header, and no X-Forwarded-* taken from anyone."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, proxy_headers=False, lifespan="off")
    return uvicorn.Server(config)
