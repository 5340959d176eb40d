"""Whether a URL reaches this machine only: the one test behind two rules. Label Studio's token is sent over
plain http only to such a URL (pipelines/labelstudio.py), and AWS requests to such a URL (moto, LocalStack,
`cardamage serve`) are signed with dummy credentials, never the caller's own (pipelines/aws.py)."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

LOOPBACK_EXAMPLES = "127.0.0.1, [::1] or localhost"


def is_loopback(url: str | None) -> bool:
    """True when the URL's host is a loopback address (127.0.0.0/8, ::1, an IPv4-mapped 127.x), `localhost`, or
    the unspecified address (0.0.0.0, ::), which Linux connects to this machine (seen here, not a documented
    promise). Other names are not looked up: a DNS answer must not make a remote host count as this machine."""
    try:
        host = urlsplit(url or "").hostname
    except ValueError:  # a malformed URL, such as an unclosed [
        return False
    if not host:
        return False
    if host.rstrip(".") == "localhost":  # urlsplit gives the host in lower case
        return True
    address = _address(host)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])  # an IPv6 zone (fe80::1%eth0) is not part of the address
    except ValueError:
        pass
    if not re.fullmatch(r"[0-9a-fx.]+", host):  # inet_aton would ignore anything after a space
        return None
    try:
        # The short and whole-number forms the C library also connects to (127.1, 2130706433, 0x7f000001).
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None
