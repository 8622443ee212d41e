"""Adapters for third-party libraries (imported only on demand: each needs its library)."""
