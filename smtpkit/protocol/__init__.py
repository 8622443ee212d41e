"""The sans-IO SMTP client core: reply parser, command writer, capabilities, state table.

Nothing in this package performs I/O, reads a clock, starts a thread or logs. Drivers feed
it bytes and write the bytes it returns.
"""

from smtpkit.protocol._commands import MAX_AUTH_LINE, MAX_COMMAND_LINE, Command, validate_address
from smtpkit.protocol._connection import (
    NEED_DATA,
    ClientConnection,
    ConnectionClosed,
    Event,
    ReplyReceived,
)
from smtpkit.protocol._content import ContentEncoder, encode_content, normalize_line_endings
from smtpkit.protocol._extensions import Extensions
from smtpkit.protocol._parser import MAX_REPLY_BYTES, MAX_REPLY_LINE, ReplyParser
from smtpkit.protocol._states import State

__all__ = [
    "MAX_AUTH_LINE",
    "MAX_COMMAND_LINE",
    "MAX_REPLY_BYTES",
    "MAX_REPLY_LINE",
    "NEED_DATA",
    "ClientConnection",
    "Command",
    "ConnectionClosed",
    "ContentEncoder",
    "Event",
    "Extensions",
    "ReplyParser",
    "ReplyReceived",
    "State",
    "encode_content",
    "normalize_line_endings",
    "validate_address",
]
