"""Which account a login name names: folded as uniqueness folds it.

Registration refuses a username whose slug is taken and an email whose normalized form
is, so every spelling it calls taken names that one account: at login, and in the
login's guess counter (identity.password_attempts), where the spellings of one name then
share one budget.
"""

from __future__ import annotations

from lambda_app.core.types import normalize_email


def slugify(username: str) -> str:
    """URL-safe handle derived from the username (case and `_`/`-` folded)."""
    return username.lower().replace("_", "-")


def account_name(login: str) -> str | None:
    """`login` as the unique column it names holds it: an email (it has an `@`, which no
    username has) normalized as registration stores it, else a username's slug. None for
    an email registration would refuse: it names no account."""
    if "@" not in login:
        return slugify(login)
    try:
        return normalize_email(login)
    except ValueError:
        return None
