from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from lambda_app.models.base import Base


class LoginThrottle(Base):
    """Failed-login counter per login name, shared by every Lambda container."""

    __tablename__ = "login_throttle"

    login: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    # Indexed: the bounded clean-up of finished windows (migration 0007).
    window_started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
