"""The doctor's AUTH steps: mechanisms offered versus the strategy, the login, SIZE.

Invariants:
    * Credentials are sent only with ``login=True``, only over TLS or to a loopback peer
      address (or with the Submitter's explicit opt-out), and the exchange ends with QUIT:
      never MAIL.
"""

from __future__ import annotations

from smtpkit import providers
from smtpkit.auth import AuthContext, NoCommonMechanism, TokenAuthStrategy, drive_flow
from smtpkit.doctor._base import Walk, short
from smtpkit.doctor._probe import Wire
from smtpkit.doctor._report import Status
from smtpkit.errors import SMTPError, error_for_reply
from smtpkit.protocol import Extensions
from smtpkit.replies import Phase
from smtpkit.transports import is_loopback_peer, peer_address

__all__ = ["AuthSteps"]


class AuthSteps(Walk):
    """The ``auth-mechanisms``, ``login`` and ``size`` steps."""

    def _encrypted(self, wire: Wire) -> bool:
        return wire.stream.is_encrypted

    def _context(self, wire: Wire, extensions: Extensions) -> AuthContext:
        return AuthContext(
            mechanisms=extensions.auth_mechanisms,
            host=self.host,
            port=self.port,
            encrypted=self._encrypted(wire),
        )

    def _auth_mechanisms(self, wire: Wire, extensions: Extensions) -> bool:
        offered = sorted(extensions.auth_mechanisms)
        shown = " ".join(offered) or "none"
        if self.auth is None:
            if offered:
                return self._add(
                    "auth-mechanisms",
                    Status.WARN,
                    f"offered: {shown}; no credentials configured",
                    "most submission servers refuse MAIL without a login: add user:password@ "
                    "to the URL (or auth=) unless this relay authorises you by IP address",
                    offered=offered,
                )
            return self._add(
                "auth-mechanisms",
                Status.OK,
                "no AUTH offered and none configured (a relay that authorises by IP address)",
                offered=offered,
            )
        strategy = type(self.auth).__name__
        loopback = is_loopback_peer(peer_address(wire.stream))  # the address, not the name
        if not (self._encrypted(wire) or loopback or self.allow_unencrypted_auth):
            return self._add(
                "auth-mechanisms",
                Status.FAIL,
                f"offered: {shown}; the link is not encrypted",
                "smtpkit refuses to send credentials in plaintext to a host that is not "
                "loopback: use smtp+starttls:// (587) or smtps:// (465)",
                offered=offered,
            )
        try:
            mechanism = self.auth.choose_mechanism(self._context(wire, extensions))
        except NoCommonMechanism as error:
            advice = error.hint or ""
            if not offered:
                advice = (
                    "the server offers no AUTH here: connect to the submission port (587 with "
                    "STARTTLS or 465 with TLS), where logins are enabled"
                )
            elif self.preset and self.preset.auth_mechanisms:
                advice += (
                    f" ({self.preset.display_name} accepts {' '.join(self.preset.auth_mechanisms)})"
                )
            return self._add(
                "auth-mechanisms",
                Status.FAIL,
                f"offered: {shown}; {strategy} speaks {', '.join(error.supported) or 'none'}",
                advice,
                offered=offered,
            )
        return self._add(
            "auth-mechanisms",
            Status.OK,
            f"offered: {shown}; {strategy} will use {mechanism}",
            offered=offered,
            mechanism=mechanism,
        )

    def _login(self, wire: Wire, extensions: Extensions) -> bool:
        if self.auth is None:
            return self._add("login", Status.SKIP, "no credentials configured")
        if not self.login:
            return self._add(
                "login",
                Status.SKIP,
                "not attempted: add --login to try the credentials (AUTH, then QUIT; no "
                "message is sent)",
            )
        strategy = self.auth
        context = self._context(wire, extensions)
        try:
            if isinstance(strategy, TokenAuthStrategy):
                flow = strategy.token_flow(context, strategy.token_provider.get_token())
            else:
                flow = strategy.flow(context)
            reply, details = drive_flow(
                flow, lambda command: wire.exchange(command, self.timeouts.command)
            )
        except SMTPError as error:
            return self._add(
                "login", Status.FAIL, f"{type(error).__name__}: {error.message}", error.hint
            )
        mechanism = strategy.choose_mechanism(context)
        if reply.code == 235:
            return self._add(
                "login",
                Status.OK,
                f"{short(reply)}: logged in as {strategy.username} with {mechanism}",
            )
        failure = error_for_reply(
            reply,
            Phase.AUTH,
            command=f"AUTH {mechanism}",
            provider=self._family,
            credential_kind=strategy.credential_kind,
            challenge=details,
            transcript=wire.transcript,
        )
        providers.enrich(failure, self.preset)
        return self._add(
            "login",
            Status.FAIL,
            f"{short(reply)} ({type(failure).__name__})",
            failure.hint,
            error=type(failure).__name__,
            code=reply.code,
            enhanced_code=reply.enhanced_code,
        )

    def _size(self, extensions: Extensions) -> bool:
        size = extensions.max_size
        if size is None:
            note = "SIZE without a number: no fixed limit" if extensions.size_declared else ""
            return self._add("size", Status.OK, note or "no SIZE limit advertised")
        mib = size / (1 << 20)
        return self._add(
            "size",
            Status.OK,
            f"SIZE {size}: messages up to {mib:.1f} MiB as sent (attachments grow by about a "
            "third when encoded)",
            max_size=size,
        )
