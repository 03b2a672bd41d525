from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lambda_app.models.base import Base
from lambda_app.models.user import EMAIL_MAX


class EmailThrottle(Base):
    """Account emails asked for per address and purpose in the current window, shared by
    every Lambda container (lambda_app/identity/email_throttle.py)."""

    __tablename__ = "email_throttle"

    purpose: Mapped[str] = mapped_column(String(20), primary_key=True)
    # The address's mailbox (its `+tag` left out: email_throttle.mailbox_of).
    email: Mapped[str] = mapped_column(String(EMAIL_MAX), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    # Indexed: the bounded clean-up of finished windows.
    window_started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
