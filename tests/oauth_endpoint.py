"""A real OAuth2 token endpoint on 127.0.0.1 for tests (not a mock of requests).

:class:`TokenEndpoint` runs ``http.server.ThreadingHTTPServer`` in a thread and speaks enough
of RFC 6749 / RFC 8628 for the providers under test:

* ``POST .../token`` with ``grant_type`` ``refresh_token`` (§6; rotates the refresh token
  when ``rotate=True``, and then refuses the old one), ``client_credentials`` (§4.4),
  ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (Google service accounts: the assertion's
  ``sub`` claim is read without verifying the signature) and
  ``urn:ietf:params:oauth:grant-type:device_code`` (RFC 8628 §3.4);
* ``POST .../devicecode`` (RFC 8628 §3.1, Microsoft's path).

Any path prefix is accepted (``/contoso.test/oauth2/v2.0/token``); each request is recorded
with its path and form. ``mode`` switches the answer to ``invalid_grant`` (400 JSON),
``invalid_client`` (401), ``500`` (an HTML page) or ``500json`` (``internal_failure``);
``delay`` makes every answer late. Issued access tokens
are remembered with their expiry, so a :class:`~smtpkit.testing.LocalServer` validator can
accept only the currently valid ones (:meth:`TokenEndpoint.token_is_valid`).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal, Self

Mode = Literal["ok", "invalid_grant", "invalid_client", "500", "500json"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
#: Seconds ``stop()`` waits for the server thread.
STOP_TIMEOUT = 5.0


@dataclass
class Seen:
    """One request the endpoint received."""

    path: str
    form: dict[str, str]

    @property
    def grant(self) -> str:
        return self.form.get("grant_type", "") if not self.path.endswith("devicecode") else "device"


@dataclass
class _State:
    lifetime: int = 3600
    rotate: bool = False
    mode: Mode = "ok"
    delay: float = 0.0
    client_secret: str | None = None
    refresh_token: str = "rt-initial-0001"
    pending_polls: int = 1
    slow_down_polls: int = 0
    device_interval: int = 0
    error_description: str = "Token has been expired or revoked."
    requests: list[Seen] = field(default_factory=list)
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    subjects: list[str] = field(default_factory=list)
    polls: int = 0


class TokenEndpoint:
    """A token endpoint on loopback; see the module docstring.

    Args:
        lifetime: ``expires_in`` of issued access tokens, seconds.
        rotate: issue a new refresh token with each refresh (Microsoft's behaviour).
        client_secret: when set, requests must carry it.
        refresh_token: the refresh token currently valid.
    """

    def __init__(
        self,
        *,
        lifetime: int = 3600,
        rotate: bool = False,
        client_secret: str | None = None,
        refresh_token: str = "rt-initial-0001",
    ) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = _State(
            lifetime=lifetime,
            rotate=rotate,
            client_secret=client_secret,
            refresh_token=refresh_token,
        )
        self._counter = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 20)).decode("utf-8")
                form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
                status, payload = endpoint._answer(self.path, form)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    ctype = "application/json" if not isinstance(payload, bytes) else "text/html"
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    # -- knobs and observations ------------------------------------------------------------

    def configure(self, **changes: object) -> None:
        """Change ``lifetime``, ``rotate``, ``mode``, ``delay``, ``pending_polls``, ..."""
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self._state, key):
                    raise AttributeError(key)
                setattr(self._state, key, value)

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._state.requests)

    def count(self, grant: str | None = None) -> int:
        return sum(1 for seen in self.requests if grant is None or seen.grant == grant)

    @property
    def refresh_token(self) -> str:
        """The refresh token the endpoint currently accepts."""
        with self._lock:
            return self._state.refresh_token

    @property
    def subjects(self) -> list[str]:
        with self._lock:
            return list(self._state.subjects)

    @property
    def issued(self) -> list[str]:
        """Every access token issued, oldest first."""
        with self._lock:
            return list(self._state.access_tokens)

    def token_is_valid(self, user: str, token: str) -> bool:
        """A LocalServer ``oauth_tokens`` validator: issued here and not expired."""
        with self._lock:
            expiry = self._state.access_tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def expire_access_tokens(self) -> None:
        """Make every issued access token invalid (as if they all expired)."""
        with self._lock:
            for token in self._state.access_tokens:
                self._state.access_tokens[token] = 0.0

    # -- the protocol ----------------------------------------------------------------------

    def _answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, object] | bytes]:
        with self._lock:
            state = self._state
            state.requests.append(Seen(path, form))
            delay, mode, description = state.delay, state.mode, state.error_description
        if delay:
            self._stop.wait(delay)
        if mode == "500":
            return 500, b"<html><body>Internal error</body></html>"
        if mode == "500json":
            return 500, {"error": "internal_failure"}
        if mode == "invalid_grant":
            return 400, {"error": "invalid_grant", "error_description": description}
        if mode == "invalid_client":
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        with self._lock:
            if path.endswith("/devicecode"):
                return self._device_authorization()
            if (
                state.client_secret is not None
                and form.get("grant_type") != JWT_BEARER
                and form.get("client_secret") != state.client_secret
            ):
                return 401, {"error": "invalid_client", "error_description": "bad secret"}
            grant = form.get("grant_type")
            if grant == "refresh_token":
                return self._refresh(form)
            if grant == "client_credentials":
                return 200, self._issue(refresh=False)
            if grant == JWT_BEARER:
                return self._jwt(form)
            if grant == DEVICE_CODE:
                return self._poll(form)
            return 400, {"error": "unsupported_grant_type"}

    def _issue(self, *, refresh: bool) -> dict[str, object]:
        number = next(self._counter)
        token = f"at-{number:04d}-{base64.b32encode(number.to_bytes(4, 'big')).decode()}"
        self._state.access_tokens[token] = time.monotonic() + self._state.lifetime
        answer: dict[str, object] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self._state.lifetime,
        }
        if refresh:
            self._state.refresh_token = f"rt-rotated-{number:04d}"
            answer["refresh_token"] = self._state.refresh_token
        return answer

    def _refresh(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        if form.get("refresh_token") != self._state.refresh_token:
            return 400, {
                "error": "invalid_grant",
                "error_description": "AADSTS70000: The provided grant is invalid or expired.",
            }
        return 200, self._issue(refresh=self._state.rotate)

    def _jwt(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        assertion = form.get("assertion", "")
        try:
            payload = assertion.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return 400, {"error": "invalid_grant", "error_description": "bad assertion"}
        self._state.subjects.append(str(claims.get("sub")))
        return 200, self._issue(refresh=False)

    def _device_authorization(self) -> tuple[int, dict[str, object]]:
        self._state.polls = 0
        return 200, {
            "device_code": "dc-secret-device-code",
            "user_code": "ABCD-EFGH",
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": 900,
            "interval": self._state.device_interval,
            "message": "To sign in, open https://microsoft.com/devicelogin and enter ABCD-EFGH",
        }

    def _poll(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        if form.get("device_code") != "dc-secret-device-code":
            return 400, {"error": "bad_verification_code"}
        self._state.polls += 1
        if self._state.polls <= self._state.slow_down_polls:
            return 400, {"error": "slow_down"}
        if self._state.polls <= self._state.slow_down_polls + self._state.pending_polls:
            return 400, {"error": "authorization_pending"}
        return 200, self._issue(refresh=True)
