"""Development tools: never shipped to Lambda (the bundle recipe leaves this package out).

The CLI (`python -m lambda_app`), the release command, the local gateway and the
embedded PostgreSQL. Nothing that runs on Lambda imports from here.
"""
