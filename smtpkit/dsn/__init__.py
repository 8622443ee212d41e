"""Delivery status notifications (RFC 3461) and other ``MAIL``/``RCPT`` parameters.

:class:`DSN` asks the server for delivery status notifications: which events to report
(``NOTIFY`` on each ``RCPT``), how much of the message a bounce returns (``RET``), an
envelope id the notifications quote (``ENVID``) and each recipient's original address
(``ORCPT``). :class:`ESMTPParams` passes parameters smtpkit does not set itself (an
extension's own keyword, or ``AUTH=<>`` of RFC 4954 §5). Both are given per message::

    submitter.send(msg, dsn=DSN(notify=("failure", "delay"), ret="headers", envid="order-42"))

    C: MAIL FROM:<shop@example.com> SIZE=1234 RET=HDRS ENVID=order-42
    C: RCPT TO:<bob@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@example.org

Invariants:
    * Every value is checked when it is built (``ConfigurationError``): keywords have the
      RFC 5321 §4.1.2 esmtp-keyword syntax, values the esmtp-value syntax (no space, ``=``
      or control character), ``ENVID`` and ``ORCPT`` are xtext-encoded by smtpkit (RFC 3461
      §4), ``NEVER`` stands alone (§4.1), and no parameter smtpkit sets itself (``SIZE``,
      ``BODY``, ``SMTPUTF8``, and the DSN keywords outside :class:`DSN`) can be given twice.
    * A server that does not offer DSN never sees a DSN parameter: the message is refused
      before ``MAIL`` (:class:`~smtpkit.errors.MessageError`), or sent without them when
      the DSN says ``if_unsupported=IfUnsupported.SEND_WITHOUT``.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from smtpkit.dsn._esmtp import check_keyword, check_value, utf8_addr_xtext, xtext
from smtpkit.errors import ConfigurationError, MessageError

__all__ = [
    "DSN",
    "ESMTPParams",
    "IfUnsupported",
    "Notify",
    "RecipientDSN",
    "Ret",
    "address_key",
    "xtext",
]

#: RFC 3461 §4.4: an ENVID is at most 100 characters (as xtext on the wire).
MAX_ENVID = 100
#: RFC 3461 §4.2: an ORCPT value is at most 500 characters.
MAX_ORCPT = 500
#: Keywords smtpkit writes itself on MAIL FROM: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8
#: (RFC 6531), and RET/ENVID, which only a DSN value sets (RFC 3461).
MAIL_OWN = frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID"})
#: Keywords smtpkit writes itself on RCPT TO: NOTIFY and ORCPT, from a DSN value.
RCPT_OWN = frozenset({"NOTIFY", "ORCPT"})


class Notify(enum.Enum):
    """When the server should report on a recipient (RFC 3461 §4.1 ``NOTIFY``)."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"
    #: No notification at all; it cannot be combined with the others.
    NEVER = "NEVER"


class Ret(enum.Enum):
    """What a failure notification returns of the message (RFC 3461 §4.3 ``RET``)."""

    FULL = "FULL"
    #: The headers only (``RET=HDRS`` on the wire).
    HEADERS = "HDRS"


class IfUnsupported(enum.Enum):
    """What to do with a DSN request when the server does not offer DSN."""

    #: Send nothing: the message ends with a ``MessageError`` before ``MAIL`` (default).
    REFUSE = "refuse"
    #: Send the message without the DSN parameters (no notifications will be asked for).
    SEND_WITHOUT = "send_without"


def _enum(kind: type[enum.Enum], value: object, where: str, aliases: Mapping[str, str]) -> str:
    """The wire value of ``value``: a member of ``kind``, or its name in any case."""
    if isinstance(value, kind):
        return str(value.value)
    if isinstance(value, str):
        name = aliases.get(value.strip().lower(), value.strip().upper())
        for member in kind:
            if name in (member.name, member.value):
                return str(member.value)
    choices = ", ".join(repr(m.name.lower()) for m in kind)
    raise ConfigurationError(
        f"{where} must be a {kind.__name__} member or one of {choices}, got {value!r}",
        hint=f"e.g. {where}={kind.__name__}.{next(iter(kind)).name}",
    )


def _notify(value: object, where: str) -> tuple[Notify, ...]:
    """``NOTIFY`` events in a fixed order, checked (RFC 3461 §4.1)."""
    if isinstance(value, str | Notify):
        value = (value,)
    if not isinstance(value, Iterable):
        raise ConfigurationError(
            f"{where} must be a sequence of Notify values, got {value!r}",
            hint='e.g. notify=("failure", "delay") or notify=(Notify.NEVER,)',
        )
    chosen = {Notify(_enum(Notify, item, where, {})) for item in value}
    if not chosen:
        raise ConfigurationError(
            f"{where} is empty", hint="ask for at least one event, or Notify.NEVER for none"
        )
    if Notify.NEVER in chosen and len(chosen) > 1:
        raise ConfigurationError(
            f"{where}: NEVER cannot be combined with other events (RFC 3461 §4.1)",
            hint="use notify=(Notify.NEVER,) alone, or drop NEVER",
        )
    return tuple(member for member in Notify if member in chosen)


def _notify_param(events: tuple[Notify, ...]) -> str:
    return "NOTIFY=" + ",".join(event.value for event in events)


def address_key(address: str) -> tuple[str, str]:
    """How recipients are matched: the local part as is, the domain ignoring case and IDNA
    (RFC 5321 §2.4: only the domain is case-insensitive)."""
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        # A bad domain is the envelope check's to report; here it only fails to match.
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
    return local, domain.lower()


def _orcpt(original: str, where: str) -> str:
    """``ORCPT`` for an original address: ``rfc822;`` xtext, or RFC 6533 ``utf-8;``."""
    if not isinstance(original, str) or not original or any(c.isspace() for c in original):
        raise ConfigurationError(
            f"{where} must be an address, got {original!r}", hint="e.g. orcpt='bob@example.org'"
        )
    encoded = (
        f"rfc822;{xtext(original)}" if original.isascii() else f"utf-8;{utf8_addr_xtext(original)}"
    )
    if len(encoded) > MAX_ORCPT:
        raise ConfigurationError(
            f"{where}: ORCPT would be {len(encoded)} characters; RFC 3461 §4.2 allows {MAX_ORCPT}"
        )
    return "ORCPT=" + encoded


@dataclass(frozen=True, init=False)
class RecipientDSN:
    """DSN settings for one recipient, overriding the message's :class:`DSN`.

    Attributes:
        notify: the events for this recipient; ``None`` keeps the DSN's.
        orcpt: this recipient's original address (``ORCPT``, RFC 3461 §4.2), e.g. the
            address a list or alias expanded to it; ``None`` uses the address itself
            (when the DSN's ``orcpt`` is true).
    """

    notify: tuple[Notify, ...] | None
    orcpt: str | None

    def __init__(
        self, *, notify: Iterable[Notify | str] | None = None, orcpt: str | None = None
    ) -> None:
        if notify is not None:
            notify = _notify(notify, "RecipientDSN.notify")
        if orcpt is not None:
            _orcpt(orcpt, "RecipientDSN.orcpt")
        object.__setattr__(self, "notify", notify)
        object.__setattr__(self, "orcpt", orcpt)


@dataclass(frozen=True, init=False)
class DSN:
    """Ask for delivery status notifications (RFC 3461) for one message.

    Strings are accepted for the enums, in any case (``"failure"``, ``"headers"``).

    Attributes:
        notify: events to report for every recipient (``NOTIFY``): any of
            :attr:`Notify.SUCCESS`, :attr:`~Notify.FAILURE`, :attr:`~Notify.DELAY`, or
            :attr:`~Notify.NEVER` alone. Default: failure and delay (what servers assume
            when NOTIFY is absent, RFC 3461 §4.1, written out).
        ret: :attr:`Ret.FULL` or :attr:`Ret.HEADERS` (``RET``); ``None`` leaves the choice
            to the server.
        envid: an id of yours that notifications quote back (``ENVID``), printable ASCII;
            smtpkit xtext-encodes it. At most 100 characters once encoded.
        orcpt: send each recipient's address as its original recipient (``ORCPT=rfc822;
            ...``, RFC 3461 §4.2), so a notification names the address you used even after
            forwarding.
        recipients: per-recipient :class:`RecipientDSN` settings, by envelope address.
        if_unsupported: :attr:`IfUnsupported.REFUSE` (default: the message is not sent,
            ``MessageError``) or :attr:`IfUnsupported.SEND_WITHOUT` when the server does
            not offer DSN.

    Raises:
        ConfigurationError: a value of the wrong kind or syntax.
    """

    notify: tuple[Notify, ...]
    ret: Ret | None
    envid: str | None
    orcpt: bool
    recipients: Mapping[str, RecipientDSN]
    if_unsupported: IfUnsupported

    def __init__(
        self,
        *,
        notify: Iterable[Notify | str] = (Notify.FAILURE, Notify.DELAY),
        ret: Ret | str | None = None,
        envid: str | None = None,
        orcpt: bool = True,
        recipients: Mapping[str, RecipientDSN] | None = None,
        if_unsupported: IfUnsupported | str = IfUnsupported.REFUSE,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "notify", _notify(notify, "DSN.notify"))
        checked_ret = None if ret is None else Ret(_enum(Ret, ret, "DSN.ret", {"headers": "HDRS"}))
        set_(self, "ret", checked_ret)
        if envid is not None:
            if not isinstance(envid, str) or not envid or not all(" " <= ch <= "~" for ch in envid):
                raise ConfigurationError(
                    f"DSN.envid must be printable ASCII text (RFC 3461 §4.4), got {envid!r}",
                    hint="e.g. an order number or your own message id",
                )
            if len(xtext(envid)) > MAX_ENVID:
                raise ConfigurationError(
                    f"DSN.envid is {len(xtext(envid))} characters as xtext; RFC 3461 §4.4 "
                    f"allows {MAX_ENVID}",
                    hint="use a shorter id (a hash or a database key)",
                )
        set_(self, "envid", envid)
        if not isinstance(orcpt, bool):
            raise ConfigurationError(f"DSN.orcpt must be True or False, got {orcpt!r}")
        set_(self, "orcpt", orcpt)
        recipients = {} if recipients is None else recipients
        if not isinstance(recipients, Mapping) or not all(
            isinstance(k, str) and isinstance(v, RecipientDSN) for k, v in recipients.items()
        ):
            raise ConfigurationError(
                "DSN.recipients must map addresses to RecipientDSN values",
                hint='e.g. recipients={"bob@example.org": RecipientDSN(notify=("never",))}',
            )
        set_(self, "recipients", MappingProxyType(dict(recipients)))
        fallback = _enum(IfUnsupported, if_unsupported, "DSN.if_unsupported", {})
        set_(self, "if_unsupported", IfUnsupported(fallback))

    def __hash__(self) -> int:
        # The generated hash would hash the mapping proxy, which cannot be hashed.
        recipients = tuple(sorted(self.recipients.items(), key=lambda item: item[0]))
        return hash((self.notify, self.ret, self.envid, self.orcpt, recipients))

    def mail_params(self) -> list[str]:
        """``RET`` and ``ENVID`` for ``MAIL FROM`` (RFC 3461 §4.3, §4.4)."""
        params = []
        if self.ret is not None:
            params.append(f"RET={self.ret.value}")
        if self.envid is not None:
            params.append(f"ENVID={xtext(self.envid)}")
        return params

    def rcpt_params(self, recipients: Iterable[str]) -> list[list[str]]:
        """``NOTIFY`` and ``ORCPT`` for each ``RCPT TO`` of ``recipients``, in order.

        Raises:
            MessageError: :attr:`recipients` names an address that is not among them (a
                setting that would silently apply to nobody).
        """
        addresses = list(recipients)
        settings = {address_key(a): s for a, s in self.recipients.items()}
        unused = set(settings) - {address_key(a) for a in addresses}
        if unused:
            named = sorted(a for a in self.recipients if address_key(a) in unused)
            raise MessageError(
                f"DSN.recipients names {', '.join(named)}, not a recipient of this message",
                hint="key DSN.recipients by the envelope addresses the message is sent to",
            )
        out = []
        for address in addresses:
            own = settings.get(address_key(address))
            notify = own.notify if own is not None and own.notify is not None else self.notify
            params = [_notify_param(notify)]
            if own is not None and own.orcpt is not None:
                params.append(_orcpt(own.orcpt, "RecipientDSN.orcpt"))
            elif self.orcpt:
                params.append(_orcpt(address, "ORCPT"))
            out.append(params)
        return out


def _params(value: object, where: str, own: frozenset[str]) -> Mapping[str, str | None]:
    """A checked, upper-cased copy of a keyword -> value mapping."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{where} must map ESMTP keywords to values (or None), got {value!r}",
            hint='e.g. {"MT-PRIORITY": "3"}',
        )
    out: dict[str, str | None] = {}
    for key, item in value.items():
        keyword = check_keyword(key, where=where)
        if keyword in out:
            raise ConfigurationError(f"{where} names {keyword} twice (keywords ignore case)")
        if keyword in own:
            raise ConfigurationError(
                f"{where}: smtpkit sets {keyword} itself",
                hint="SIZE, BODY and SMTPUTF8 follow from the message; ask for RET, ENVID, "
                "NOTIFY and ORCPT with dsn=DSN(...)",
            )
        out[keyword] = check_value(keyword, item, where=where)
    return MappingProxyType(out)


def _render(params: Mapping[str, str | None]) -> list[str]:
    return [key if value is None else f"{key}={value}" for key, value in params.items()]


@dataclass(frozen=True)
class ESMTPParams:
    """``MAIL FROM`` and ``RCPT TO`` parameters that smtpkit does not set itself.

    Keys are ESMTP keywords (any case), values the parameter text or ``None`` for a
    keyword alone. Values go on the wire as given: encode them as the extension says
    (e.g. :func:`xtext` for RFC 4954's ``AUTH=``). smtpkit does not know which extension
    a keyword belongs to: a server that does not offer it refuses the command (``555``).

    Attributes:
        mail: parameters for ``MAIL FROM``.
        rcpt: parameters for every ``RCPT TO``.
        per_recipient: parameters for one recipient's ``RCPT TO``, by address; they
            replace a :attr:`rcpt` parameter of the same keyword.

    Raises:
        ConfigurationError: a keyword or value with the wrong syntax, a keyword given twice,
            or one smtpkit sets itself (SIZE, BODY, SMTPUTF8; RET, ENVID, NOTIFY and ORCPT
            come from :class:`DSN`).
    """

    mail: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    rcpt: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    per_recipient: Mapping[str, Mapping[str, str | None]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "mail", _params(self.mail, "ESMTPParams.mail", MAIL_OWN))
        set_(self, "rcpt", _params(self.rcpt, "ESMTPParams.rcpt", RCPT_OWN))
        if not isinstance(self.per_recipient, Mapping):
            raise ConfigurationError(
                "ESMTPParams.per_recipient must map addresses to parameter mappings",
                hint='e.g. per_recipient={"bob@example.org": {"X-TAG": "7"}}',
            )
        checked = {
            address: _params(params, f"ESMTPParams.per_recipient[{address!r}]", RCPT_OWN)
            for address, params in self.per_recipient.items()
        }
        set_(self, "per_recipient", MappingProxyType(checked))

    def __hash__(self) -> int:
        # The generated hash would hash the mapping proxies, which cannot be hashed.
        per_recipient = tuple((a, tuple(p.items())) for a, p in self.per_recipient.items())
        return hash((tuple(self.mail.items()), tuple(self.rcpt.items()), per_recipient))

    def mail_params(self) -> list[str]:
        """The ``MAIL FROM`` parameters as they go on the wire."""
        return _render(self.mail)

    def rcpt_params(self, recipients: Iterable[str]) -> list[list[str]]:
        """The ``RCPT TO`` parameters of each of ``recipients``, in order.

        Raises:
            MessageError: :attr:`per_recipient` names an address not among them.
        """
        addresses = list(recipients)
        own = {address_key(a): p for a, p in self.per_recipient.items()}
        unused = set(own) - {address_key(a) for a in addresses}
        if unused:
            named = sorted(a for a in self.per_recipient if address_key(a) in unused)
            raise MessageError(
                f"ESMTPParams.per_recipient names {', '.join(named)}, not a recipient of "
                "this message",
                hint="key per_recipient by the envelope addresses the message is sent to",
            )
        return [_render({**self.rcpt, **own.get(address_key(a), {})}) for a in addresses]
