"""Every ORM model, importable from one place so Alembic sees one MetaData."""

from lambda_app.models.account_token import AccountToken, TokenPurpose
from lambda_app.models.base import Base
from lambda_app.models.email_throttle import EmailThrottle
from lambda_app.models.login_throttle import LoginThrottle
from lambda_app.models.refresh_token import RefreshToken
from lambda_app.models.user import User

__all__ = [
    "AccountToken",
    "Base",
    "EmailThrottle",
    "LoginThrottle",
    "RefreshToken",
    "TokenPurpose",
    "User",
]
