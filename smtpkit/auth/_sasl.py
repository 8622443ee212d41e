"""``SaslMechanismStrategy``: the base class that turns a SASL exchange into SMTP AUTH.

A subclass writes the client side of its mechanism as a generator of plain-text messages;
this module does the SMTP part (RFC 4954): the ``AUTH`` line, base64, the 512-octet rule
for initial responses, and the flow rule.

Invariants:
    * The flow yields ``AUTH`` first, answers only ``334`` replies, and returns at the first
      reply that is not ``334``: the subclass's exchange never sees it, and nothing is
      retried or tried with another mechanism.
    * ``AUTH <mechanism> <initial response>`` is sent only if it fits in 512 octets
      including CRLF; otherwise the response follows the first ``334`` (RFC 4954 §4).
    * The exchange generator is always closed when the flow ends or is abandoned.
    * Strategies show secrets as ``'***'`` in ``repr`` and refuse to pickle.
    * Every AUTH line declares what the server's replies must never show
      (``Command.secrets``): the SASL message and every :class:`Secret` the strategy holds;
      the protocol core masks them in the replies.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Collection, Mapping, Sequence
from typing import NoReturn

from smtpkit.auth._base import (
    CONTINUE,
    AuthContext,
    AuthFlow,
    NoCommonMechanism,
    SaslExchange,
    Secret,
    b64encode_text,
    check_credential,
)
from smtpkit.errors import ConfigurationError, CredentialKind, LocalProtocolError
from smtpkit.protocol import MAX_COMMAND_LINE, Command
from smtpkit.replies import Reply

__all__ = ["SaslMechanismStrategy"]

# RFC 4422 §3.1: sasl-mech = 1*20mech-char, mech-char = UPPER-ALPHA / DIGIT / HYPHEN / "_".
_MECHANISM_RE = re.compile(r"^[A-Z0-9_-]{1,20}$")


class SaslMechanismStrategy(abc.ABC):
    """Base class for strategies built from SASL mechanisms; subclass it to add one.

    A subclass declares the mechanisms it speaks, in preference order, and implements
    :meth:`exchange`: a generator that yields the client's SASL messages as plain text and
    receives each ``334`` reply. The base class does the SMTP part: choosing the mechanism,
    base64, the ``AUTH`` line, moving an initial response that would make the line longer
    than 512 octets into the first continuation (RFC 4954 §4), and stopping at the first
    reply that is not ``334``.

    For example (the exchange of RFC 2195)::

        C: AUTH CRAM-MD5
        S: 334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
        C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
        S: 235 2.7.0 Authentication successful

    is written as::

        class CramMD5Auth(SaslMechanismStrategy):
            mechanisms = ("CRAM-MD5",)

            def __init__(self, username: str, password: str) -> None:
                super().__init__(username)
                self._password = Secret(password)

            def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
                reply = yield None  # no initial response: wait for the challenge
                key = self._password.reveal().encode()
                digest = hmac.new(key, b64decode_challenge(reply), "md5").hexdigest()
                yield f"{self.username} {digest}"

    Attributes:
        mechanisms: the class's mechanisms in preference order; an instance may narrow or
            reorder them with ``mechanisms=``.
        credential_kind: the kind of secret, used for error hints.
    """

    mechanisms: tuple[str, ...] = ()
    credential_kind: CredentialKind = CredentialKind.PASSWORD

    def __init__(self, username: str, *, mechanisms: Sequence[str] | None = None) -> None:
        """Store the username and the mechanism preference.

        Raises:
            ConfigurationError: an empty username or one with NUL, or ``mechanisms`` empty
                or naming one the class does not implement.
        """
        self._username = check_credential("username", username)
        self.mechanisms = self._preference(mechanisms)

    def _preference(self, mechanisms: Sequence[str] | None) -> tuple[str, ...]:
        known = type(self).mechanisms
        name = type(self).__name__
        # fullmatch: with match(), "$" also accepts a name ending in "\n".
        if not known or any(not _MECHANISM_RE.fullmatch(m) for m in known):
            raise ConfigurationError(
                f"{name}.mechanisms must name at least one upper-case SASL mechanism "
                "(RFC 4422 §3.1)"
            )
        if mechanisms is None:
            return known
        if isinstance(mechanisms, str):
            raise ConfigurationError("mechanisms must be a sequence of names, not a str")
        if not isinstance(mechanisms, Collection) or not all(
            isinstance(m, str) for m in mechanisms
        ):
            raise ConfigurationError(
                f"{name}.mechanisms must be a sequence of names such as ('PLAIN', 'LOGIN')"
            )
        chosen = tuple(m.upper() for m in mechanisms)
        unknown = [m for m in chosen if m not in known]
        if unknown or not chosen:
            raise ConfigurationError(
                f"{name} supports {', '.join(known)}; got mechanisms={tuple(mechanisms)!r}"
            )
        return tuple(dict.fromkeys(chosen))  # drop repeats, keep the order

    @property
    def username(self) -> str:
        """The account name sent to the server."""
        return self._username

    def choose_mechanism(self, context: AuthContext) -> str:
        """The first mechanism of :attr:`mechanisms` that the server offers.

        Raises:
            NoCommonMechanism: none is offered; nothing has been sent.
        """
        for mechanism in self.mechanisms:
            if mechanism in context.mechanisms:
                return mechanism
        raise NoCommonMechanism(
            offered=context.mechanisms,
            supported=self.mechanisms,
            strategy=type(self).__name__,
            encrypted=context.encrypted,
            hint=self._narrowed_hint(context.mechanisms),
        )

    def _narrowed_hint(self, offered: Collection[str]) -> str | None:
        """A hint when ``mechanisms=`` excluded one the class could have used."""
        usable = [m for m in type(self).mechanisms if m in offered]
        if not usable:
            return None
        return (
            f"{type(self).__name__} can also use {', '.join(usable)}, which the server "
            f"offers; keep the default mechanisms={type(self).mechanisms!r}"
        )

    @abc.abstractmethod
    def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
        """The client side of one SASL exchange, as text (base64 is done for you).

        The first value yielded is the initial response: a string (``""`` for an empty one)
        to put on the ``AUTH`` line, or ``None`` to send ``AUTH <mechanism>`` alone and wait
        for the server's first challenge. Each later ``yield`` receives the next ``334``
        reply (decode it with :func:`b64decode_challenge`) and yields the answer. Return
        when there is nothing more to say. It is never sent a reply that is not ``334``.
        """

    def failure_details(
        self, reply: Reply, challenges: tuple[Reply, ...]
    ) -> Mapping[str, str] | None:
        """Details the flow returns when the exchange does not end in success.

        Override to decode, e.g., an OAuth2 JSON error challenge. ``reply`` is the final
        reply; ``challenges`` are the ``334`` replies received before it. The default
        returns ``None``.
        """
        return None

    def flow(self, context: AuthContext) -> AuthFlow:
        """Run :meth:`exchange` as SMTP commands (see the module docstring for the driver).

        ::

            C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
            S: 235 2.7.0 Accepted

        Raises:
            NoCommonMechanism: on the first ``next()``, before any command.
            RemoteProtocolError: from ``send()``, when the exchange cannot read a challenge;
                the driver should cancel with ``*`` or close the connection.
        """
        mechanism = self.choose_mechanism(context)
        steps = self.exchange(mechanism, context)
        try:
            try:
                initial = next(steps)
            except StopIteration:
                raise LocalProtocolError(
                    f"{type(self).__name__}.exchange() must yield at least once"
                ) from None
            pending: Command | None = None
            if initial is None:
                command = Command.auth(mechanism)
            else:
                encoded = b64encode_text(initial)
                # RFC 4954 §4: an empty initial response is sent as "=".
                inline = encoded or "="
                secrets = self._reply_secrets(initial)
                if len(f"AUTH {mechanism} {inline}") + 2 <= MAX_COMMAND_LINE:
                    command = Command.auth(mechanism, inline, secrets=secrets)
                else:
                    # RFC 4954 §4: a response that would push the line past 512 octets goes
                    # after the server's (empty) 334 instead.
                    command = Command.auth(mechanism)
                    pending = Command.auth_response(encoded, secrets=secrets)
            challenges: list[Reply] = []
            reply = yield command
            while reply.code == CONTINUE:
                challenges.append(reply)
                if pending is not None:
                    response, pending = pending, None
                else:
                    try:
                        text = steps.send(reply)
                    except StopIteration:
                        # Nothing more to say; the driver cancels with "*".
                        return self.failure_details(reply, tuple(challenges))
                    if text is None:
                        raise LocalProtocolError(
                            f"{type(self).__name__}.exchange() may yield None only as its "
                            "first value (no initial response)"
                        )
                    response = Command.auth_response(
                        b64encode_text(text), secrets=self._reply_secrets(text)
                    )
                reply = yield response
            if reply.code // 100 == 2:
                return None
            return self.failure_details(reply, tuple(challenges))
        finally:
            steps.close()

    def _reply_secrets(self, text: str) -> tuple[str, ...]:
        """What the server's replies must never show after ``text`` was sent.

        The SASL message itself (unless it is just the user name, as in LOGIN's first
        step) and every :class:`~smtpkit.auth.Secret` the strategy holds: the protocol core
        masks them, raw and as sent in base64, in every reply to AUTH. A subclass that keeps
        its password in a ``Secret`` attribute gets this for free.
        """
        held = [
            value.reveal()
            for value in getattr(self, "__dict__", {}).values()
            if isinstance(value, Secret)
        ]
        return (*held, text) if text != self._username else tuple(held)

    def _secret_fields(self) -> list[str]:
        return [
            f"{name.lstrip('_')}='***'"
            for name, value in vars(self).items()
            if isinstance(value, Secret)
        ]

    def __repr__(self) -> str:
        fields = [f"username={self._username!r}", *self._secret_fields()]
        if self.mechanisms != type(self).mechanisms:
            fields.append(f"mechanisms={self.mechanisms!r}")
        return f"{type(self).__name__}({', '.join(fields)})"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__}: credentials are not picklable; rebuild the strategy "
            "from configuration in each process"
        )

    def __copy__(self) -> SaslMechanismStrategy:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> SaslMechanismStrategy:
        return self
