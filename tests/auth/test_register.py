import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.models import User


async def test_register_creates_user(client: httpx.AsyncClient, session: AsyncSession) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"username": "Alice_B", "email": "Alice@Example.COM", "password": "s3cret-pass",
              "first_name": "Alice", "last_name": "B"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["username"] == "Alice_B"
    assert body["slug"] == "alice-b"
    assert body["email"] == "alice@example.com"
    assert body["is_superuser"] is False and body["is_active"] is True
    assert "hashed_password" not in body and "password" not in body
    stored = await session.scalar(select(User).where(User.username == "Alice_B"))
    assert stored is not None and stored.hashed_password.startswith("$argon2id$")
