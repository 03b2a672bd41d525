from lambda_app.core.errors import AppError, NotAuthenticated


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    # One message for unknown users, wrong passwords and inactive accounts: no enumeration.
    message = "Incorrect username or password"


class TooManyLoginAttempts(AppError):
    status_code = 429
    code = "too_many_login_attempts"
    message = "Too many failed login attempts, try again later"


class InvalidRefreshToken(NotAuthenticated):
    code = "invalid_refresh_token"
    # One message for unknown, expired, spent, revoked and replayed tokens.
    message = "Invalid, expired or revoked refresh token"
