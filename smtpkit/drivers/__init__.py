"""Drivers: the code that performs the send engine's effects with real I/O.

A driver owns streams, clocks, sleeps, the connection pool, jobs, rate limits and
callbacks; every SMTP decision is the engine's (:mod:`smtpkit.engine`). Here lives the
asyncio driver, :class:`smtpkit.AsyncSubmitter`.
"""
