"""Benchmarks for smtpkit against its peers (run from the repository root: ``python -m ...``)."""
