"""The client's cookie jar: the stdlib :class:`http.cookiejar.CookieJar`, fed and read here.

::

    jar = make_jar({"theme": "dark"})
    header = request_cookie_header(jar, "https://example.org/a", "GET")  # "theme=dark"
    store_cookies(jar, response_headers, "https://example.org/a", "GET")

The jar does the parsing and the rules (domain and path matching, host-only
versus ``Domain=`` cookies, ``Secure``, ``Expires`` / ``Max-Age``); these
functions only show it our requests and responses as the ``urllib`` objects
it expects, as httpx does.
"""

from __future__ import annotations

import email.message
import urllib.request
from collections.abc import Mapping
from http.cookiejar import Cookie, CookieJar
from urllib.parse import urlsplit, urlunsplit

from ._headers import Headers

__all__ = ["CookiesLike", "make_jar", "request_cookie_header", "store_cookies"]

CookiesLike = CookieJar | Mapping[str, str] | None


def make_jar(cookies: CookiesLike) -> CookieJar:
    """The jar for ``Client(cookies=...)``: that jar itself, or a new one holding a dict's cookies.

    A dict's cookies have no domain: they are sent to every host (as
    httpx's are). Put :class:`http.cookiejar.Cookie` objects with a domain
    in a ``CookieJar`` to scope them to one site.
    """
    if isinstance(cookies, CookieJar):
        return cookies
    jar = CookieJar()
    if cookies is None:
        return jar
    if not isinstance(cookies, Mapping):
        raise TypeError(f"cookies= is a dict or an http.cookiejar.CookieJar, not "
                        f"{type(cookies).__name__}")
    for name, value in cookies.items():
        jar.set_cookie(Cookie(
            version=0, name=name, value=value, port=None, port_specified=False, domain="",
            domain_specified=False, domain_initial_dot=False, path="/", path_specified=True,
            secure=False, expires=None, discard=True, comment=None, comment_url=None, rest={}))
    return jar


def _urllib_request(url: str, method: str) -> urllib.request.Request:
    # Without the credentials (http://user:pass@host/) and the fragment: the
    # jar would take "user:pass@host" for the host.
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.request.Request(urlunsplit(parts._replace(netloc=netloc, fragment="")),
                                  method=method)


def request_cookie_header(jar: CookieJar, url: str, method: str) -> str | None:
    """The ``Cookie`` header the jar has for a request to ``url`` (None: no cookie)."""
    request = _urllib_request(url, method)
    jar.add_cookie_header(request)
    return request.get_header("Cookie")


class _Response:
    """What ``CookieJar.extract_cookies`` reads of a response: ``info()``, its headers."""

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def info(self) -> email.message.Message:
        message = email.message.Message()
        for name in ("set-cookie", "set-cookie2"):
            for value in self._headers.get_all(name):
                message[name] = value
        return message


def store_cookies(jar: CookieJar, headers: Headers, url: str, method: str) -> None:
    """Keep the cookies a response to ``method url`` sets (``Set-Cookie``) that the rules allow."""
    if "set-cookie" in headers or "set-cookie2" in headers:
        jar.extract_cookies(_Response(headers), _urllib_request(url, method))  # type: ignore[arg-type]
