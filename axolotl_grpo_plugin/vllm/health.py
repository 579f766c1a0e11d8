"""Is the vLLM server up? Checks of the server's health endpoint (`defaults.VLLM_HEALTH_PATH`:
`/health/` from Axolotl 0.19's TRL-style server, `/health` from 0.21's native vLLM) and of the port.

Proxies are bypassed on purpose: an `http_proxy` variable without `no_proxy`
would otherwise send a loopback health check to the proxy and report a healthy
server as down.
"""

from __future__ import annotations

import errno
import socket
import urllib.error
import urllib.request

from ..config.defaults import VLLM_HEALTH_PATH, VLLM_HOST


LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def health_url(host: str, port: int) -> str:
    """The health endpoint `axolotl vllm-serve` of the installed Axolotl serves."""
    if host in ("0.0.0.0", "::"):
        host = VLLM_HOST
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{int(port)}{VLLM_HEALTH_PATH}"


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """True when the server answers 200; any error or other status means not (yet)."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (a bind there would fail)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR so a port in TIME_WAIT from a previous run counts as free,
        # as it is for the server (uvicorn sets the same option).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False
