"""What went wrong on the network, in one line a user can act on.

requests wraps urllib3 wraps the socket error, and its ``str()`` is a 400-character dump
(``HTTPSConnectionPool(host=..., port=443): Max retries exceeded ... NameResolutionError``).
This walks the chain down to the cause and says it plainly, with a hint that applies to that
cause, and whether trying again can help: a name that does not resolve or a port nobody
listens on will not change in the next few seconds; a timeout or a reset connection may.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import requests
import urllib3

from advisor.errors import RegistryError

INSECURE_HINT = "plain HTTP or a self-signed certificate off loopback needs --insecure"


@dataclass(frozen=True, slots=True)
class NetworkFailure:
    message: str
    hint: str
    retryable: bool

    def error(self) -> RegistryError:
        return RegistryError(self.message, hint=self.hint)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, what it wraps (urllib3's ``reason``, ``args``), its causes and contexts."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        reason = getattr(e, "reason", None)
        nested = [reason, e.__cause__, e.__context__, *e.args]
        todo.extend(x for x in nested if isinstance(x, BaseException))


def classify(error: BaseException, host: str) -> NetworkFailure:
    """The cause of a failed connection to ``host`` (``HOST[:PORT]``) and what to do about it."""
    chain = list(_chain(error))
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if any(isinstance(e, socket.gaierror | urllib3.exceptions.NameResolutionError) for e in chain):
        return NetworkFailure(f"cannot resolve {name}: no network?",
                              "check the host name in the reference and this machine's DNS; "
                              "a local file needs a transport (docker-archive:, oci:)", False)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return NetworkFailure(f"connection refused by {host}",
                              "is a registry listening on that host and port?", False)
    if any(isinstance(e, ssl.SSLError | requests.exceptions.SSLError) for e in chain):
        cause = next((str(e) for e in chain if isinstance(e, ssl.SSLError)), "TLS failed")
        return NetworkFailure(f"TLS with {host} failed: {_short(cause)}", INSECURE_HINT, False)
    if any(isinstance(e, TimeoutError | socket.timeout | requests.exceptions.Timeout
                      | urllib3.exceptions.TimeoutError) for e in chain):
        return NetworkFailure(f"{host} did not answer in time",
                              "the registry or the network is slow or down; try again later", True)
    if any(isinstance(e, OSError) and e.errno is not None and e.errno in _UNREACHABLE for e in chain):
        return NetworkFailure(f"no route to {host}: no network?",
                              "check this machine's network connection", False)
    root = chain[-1] if len(chain) > 1 else error
    return NetworkFailure(f"cannot reach {host}: {type(root).__name__}: {_short(str(root))}",
                          "check the registry address and your network", True)


_UNREACHABLE = {101, 113}  # ENETUNREACH, EHOSTUNREACH


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
