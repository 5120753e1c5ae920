"""Reaching the Dask scheduler that drives ingest and queries.

:func:`connect_client` reaches a scheduler (``host``, ``host:port``, ``tcp://host:port``) or
starts an embedded ``LocalCluster`` of worker processes. The tasks themselves run through
:class:`~skyhook_dask.runtime.mappers.OnDask`.
"""

from __future__ import annotations

from distributed import Client, default_client
from distributed.comm.addressing import parse_address, parse_host_port, unparse_host_port

from ..exceptions import SchedulerUnavailableError

__all__ = ["DEFAULT_SCHEDULER_PORT", "connect_client", "has_current_client", "scheduler_address"]

DEFAULT_SCHEDULER_PORT = 8786
_HOST_PORT_SCHEMES = ("tcp", "tls", "ws", "wss")


def scheduler_address(address: str) -> str:
    """``host``, ``host:port`` or ``scheme://host[:port]`` as a full scheduler address."""
    text = address.strip() if isinstance(address, str) else ""
    if not text:
        raise ValueError(
            f"a scheduler address is 'host', 'host:port' or 'tcp://...', not {address!r}"
        )
    scheme, location = parse_address(text if "://" in text else f"tcp://{text}")
    if scheme not in _HOST_PORT_SCHEMES:
        return text  # inproc:// and other transports have their own location syntax
    try:
        host, port = parse_host_port(location, default_port=DEFAULT_SCHEDULER_PORT)
    except ValueError as exc:
        raise ValueError(f"cannot read the scheduler address {address!r}: {exc}") from exc
    return f"{scheme}://{unparse_host_port(host, port)}"


def has_current_client() -> bool:
    try:
        default_client()
    except ValueError:
        return False
    return True


def connect_client(address: str | None = None, *, timeout: float | None = None) -> Client:
    """A Dask client: connected to ``address``, else the current client, else a new embedded
    ``LocalCluster`` of worker processes (closed together with the client)."""
    if address is None:
        try:
            return default_client()
        except ValueError:
            return Client(processes=True, dashboard_address=":0")  # never a port clash
    target = scheduler_address(address)
    try:
        return Client(target, **({} if timeout is None else {"timeout": timeout}))
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnavailableError(
            f"cannot reach the Dask scheduler at {target}: {exc}"
        ) from exc
