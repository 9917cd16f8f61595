"""http(s) URL inputs, fetched by the server when its operator turns them on (`--url-inputs`).

A server that fetches what its clients name can be made to reach what only it can reach (a
cloud's metadata service at 169.254.169.254, a database on localhost): every address a host
name resolves to is checked, private, loopback, link-local and other special addresses are
refused unless a network of `--url-allow-net` holds them, the connection goes to the address
that was checked (a second look-up cannot swap it), and each redirect is checked the same way
before it is followed. The whole fetch is bounded in time, and the body in size.
"""

from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
CHUNK = 1 << 16


class UrlRefused(Exception):
    """A URL that is not fetched, or whose fetch failed: the reason, in words."""


@dataclasses.dataclass(frozen=True)
class UrlPolicy:
    """What URL inputs may reach: special addresses only within `allowed`, `max_bytes` a
    body, `timeout` seconds a fetch (redirects included)."""

    max_bytes: int
    timeout: float = 20.0
    allowed: tuple[IPNetwork, ...] = ()


def is_url(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


def _special(address: IPAddress) -> str | None:
    """What makes an address one a server must not be sent to, or None for a public one."""
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    for what, special in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                          ("unspecified", address.is_unspecified), ("multicast", address.is_multicast),
                          ("reserved", address.is_reserved), ("private", address.is_private)):
        if special:
            return what
    return None


def checked_address(host: str, port: int, policy: UrlPolicy) -> str:
    """The address to connect to for `host`, once every address it resolves to is allowed."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"{host}: cannot resolve ({exc})") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    for address in addresses:
        what = _special(address)
        if what and not any(address in net for net in policy.allowed if net.version == address.version):
            article = "an" if what[0] in "aeiou" else "a"
            raise UrlRefused(f"{host} is {address}, {article} {what} address: refused (bind serve --url-allow-net)")
    return str(addresses[0])


class _Pinned(http.client.HTTPConnection):
    """A connection to the address that was checked, whatever the host name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(_Pinned):
    default_port = 443

    def connect(self) -> None:
        super().connect()
        self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.host)


def fetch(url: str, policy: UrlPolicy) -> tuple[bytes, str, str]:
    """(body, MIME type, final URL) of a GET of `url`, or UrlRefused saying why not."""
    deadline = time.monotonic() + policy.timeout
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UrlRefused(f"{url[:200]}: only http and https URLs are fetched")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise UrlRefused(f"{url[:200]}: the port is not a number") from None
        address = checked_address(parts.hostname, port, policy)
        kind = _PinnedTLS if scheme == "https" else _Pinned
        conn = kind(parts.hostname, port, address, timeout=_left(deadline))
        try:
            conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                         headers={"User-Agent": "bind-serve", "Accept": "*/*"})
            response = conn.getresponse()
            if response.status in REDIRECTS and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location"))
                continue
            if response.status != 200:
                raise UrlRefused(f"{parts.hostname} answered HTTP {response.status}")
            body = _read(response, policy, deadline)
            mime = (response.getheader("Content-Type") or "").partition(";")[0].strip().lower()
            return body, mime, url
        except (OSError, http.client.HTTPException) as exc:
            raise UrlRefused(f"{parts.hostname}: {exc or type(exc).__name__}") from None
        finally:
            conn.close()
    raise UrlRefused(f"more than {MAX_REDIRECTS} redirects")


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise UrlRefused("took too long (bind serve --url-timeout)")
    return left


def _read(response: http.client.HTTPResponse, policy: UrlPolicy, deadline: float) -> bytes:
    """The body, up to `max_bytes`; each read waits at most what was left of the time when
    the connection opened, and none starts past the deadline."""
    declared = response.getheader("Content-Length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise UrlRefused(f"{declared} bytes, over the {policy.max_bytes}-byte per-file limit")
    parts, size = [], 0
    while True:
        _left(deadline)
        chunk = response.read(CHUNK)
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > policy.max_bytes:
            raise UrlRefused(f"over the {policy.max_bytes}-byte per-file limit")
        parts.append(chunk)
