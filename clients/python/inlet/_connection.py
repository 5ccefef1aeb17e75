"""How the client reaches a server: the address (``http://`` plaintext, ``https://`` TLS), the
channel options (message size limits, reconnect backoff), the token sent with every call,
and the retry policy of appends whose outcome is unknown. Shared by the sync and asyncio
clients, which each open their own kind of channel from these settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc

from .arrow import MAX_GRPC_MESSAGE_BYTES
from .errors import InvalidInput

# Deadline of one unary admin call (create, describe, list, status).
CALL_TIMEOUT_SECONDS = 30.0
# Deadline of one append attempt. The server answers within its commit timeout (30 s by
# default) with the outcome or "unknown", so this only fires when the server is stuck.
APPEND_ATTEMPT_TIMEOUT_SECONDS = 60.0
# How long an append whose outcome is unknown is retried (same producer id and sequence)
# before it fails with Unavailable: long enough to ride out a server restart.
APPEND_RETRY_SECONDS = 60.0
# Backoff between append attempts: doubles from the first, capped, with jitter.
APPEND_MIN_BACKOFF_SECONDS = 0.05
APPEND_MAX_BACKOFF_SECONDS = 2.0
# Reconnect backoff of the channel, so a restarted server is found within ~2 s rather than
# gRPC's default of up to 120 s.
RECONNECT_MIN_BACKOFF_MS = 100
RECONNECT_MAX_BACKOFF_MS = 2000


@dataclass(frozen=True)
class TLS:
    """TLS settings of an ``https://`` connection: PEM file paths. Without ``ca_file`` the
    system's roots are used; ``cert_file`` and ``key_file`` present a client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()

        if (self.cert_file is None) != (self.key_file is None):
            raise InvalidInput("TLS needs both cert_file and key_file for a client certificate, or neither")
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


@dataclass(frozen=True)
class Endpoint:
    """A parsed server address with what every call carries."""

    url: str
    target: str
    host: str
    port: int
    credentials: grpc.ChannelCredentials | None
    metadata: tuple[tuple[str, str], ...]
    # The token and TLS files as given, for the HTTP listener's clients (the REST catalog).
    token: str | None = None
    tls: "TLS | None" = None

    @property
    def options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_MIN_BACKOFF_MS),
            ("grpc.min_reconnect_backoff_ms", RECONNECT_MIN_BACKOFF_MS),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_BACKOFF_MS),
        ]


def parse_endpoint(url: str, token: str | None, tls: TLS | bool | None) -> Endpoint:
    """Checks and splits ``url``: ``http://host:port`` or ``https://host:port`` (``tls`` set
    also makes a plain ``host:port`` use TLS)."""
    if not isinstance(url, str) or not url:
        raise InvalidInput(f"server address must be a URL like http://127.0.0.1:7070, not {url!r}")
    parts = urlsplit(url if "://" in url else f"{'https' if tls else 'http'}://{url}")
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"server address {url!r} must start with http:// or https://")
    if parts.path not in ("", "/") or parts.query or not parts.hostname:
        raise InvalidInput(f"server address {url!r} must be scheme://host:port with no path")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 7070)
    except ValueError:
        raise InvalidInput(f"server address {url!r} has an invalid port") from None
    host = parts.hostname
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    secure = parts.scheme == "https" or bool(tls)
    if secure:
        settings = tls if isinstance(tls, TLS) else TLS()
        credentials = settings.credentials()
    else:
        credentials = None
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    settings = tls if isinstance(tls, TLS) else None
    return Endpoint(url, target, host, port, credentials, metadata, token or None, settings)


class Backoff:
    """Delays between attempts of an append with an unknown outcome, within
    :data:`APPEND_RETRY_SECONDS` of the first attempt."""

    def __init__(self, now: float):
        self._deadline = now + APPEND_RETRY_SECONDS
        self._delay = APPEND_MIN_BACKOFF_SECONDS

    def next_delay(self, now: float) -> float | None:
        """The pause before the next attempt, or None when the time is up."""
        if now >= self._deadline:
            return None
        delay = min(self._delay, APPEND_MAX_BACKOFF_SECONDS) * random.uniform(0.5, 1.0)
        self._delay *= 2
        return min(delay, max(0.0, self._deadline - now))


def new_producer_id() -> int:
    """A random non-zero 64-bit producer id (ids only need to be unique among producers)."""
    return random.SystemRandom().getrandbits(64) or 1
