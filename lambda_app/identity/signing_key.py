"""The key tokens are signed with, resolved once per process (on first use, never at init).

Locally the JWT secret comes from settings. On AWS it comes from Secrets Manager
(`JWT_SECRET_ARN`), so it never sits in a Lambda environment variable.
"""

from __future__ import annotations

from functools import lru_cache

from lambda_app.core import aws
from lambda_app.core.settings import check_jwt_secret, get_settings


@lru_cache(maxsize=1)
def get_jwt_secret() -> str:
    settings = get_settings()
    if settings.jwt_secret_arn:
        secret = aws.fetch_secret_string(settings.jwt_secret_arn)
    else:
        secret = settings.jwt_secret.get_secret_value()
    check_jwt_secret(secret, settings.environment)
    return secret
