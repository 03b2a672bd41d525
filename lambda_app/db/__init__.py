"""The database plumbing: connection plan, credential sources, TLS, engine, per-request session.

A leaf for the app: it imports no domain package.
"""
