"""Who is calling: password hashing, JWT access tokens, and the caller as a dependency."""
