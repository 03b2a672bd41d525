from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, DateTime, Identity, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from lambda_app.models.base import Base, TimestampMixin

# Column limits, shared with the request schemas so validation matches storage.
USERNAME_MAX = 32
EMAIL_MAX = 254  # RFC 5321 path limit
NAME_MAX = 100


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are stored lower-cased, which makes uniqueness case-insensitive.
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    slug: Mapped[str] = mapped_column(String(USERNAME_MAX), unique=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    first_name: Mapped[str] = mapped_column(String(NAME_MAX), server_default="")
    last_name: Mapped[str] = mapped_column(String(NAME_MAX), server_default="")
    hashed_password: Mapped[str] = mapped_column(String(255))
    is_superuser: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # Bumped on every password change and deactivation; tokens carry it, so older tokens
    # stop working.
    token_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Set when the user follows a verification link sent to `email`; cleared when the
    # email changes.
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def __repr__(self) -> str:  # never include the hash
        return f"User(id={self.id!r}, username={self.username!r})"
