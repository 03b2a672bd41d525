"""Shared plumbing: settings, database, security, errors, logging."""
