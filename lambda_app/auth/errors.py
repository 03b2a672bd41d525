from lambda_app.core.errors import AppError, NotAuthenticated, Throttled


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    # One message for unknown users, wrong passwords and inactive accounts: no enumeration.
    message = "Incorrect username or password"


class TooManyLoginAttempts(Throttled):
    code = "too_many_login_attempts"
    message = "Too many failed login attempts, try again later"


class InvalidRefreshToken(NotAuthenticated):
    code = "invalid_refresh_token"
    # One message for unknown, expired, spent, revoked and replayed tokens.
    message = "Invalid, expired or revoked refresh token"


class EmailNotVerified(AppError):
    # Only after the right password (a wrong one is the usual 401): nothing is enumerable.
    status_code = 403
    code = "email_not_verified"
    message = "Email address not verified: follow the verification link emailed to you"


class InvalidResetToken(AppError):
    status_code = 400
    code = "invalid_reset_token"
    # One message for unknown, expired and used tokens.
    message = "Invalid, expired or already used password reset link"


class InvalidVerificationToken(AppError):
    status_code = 400
    code = "invalid_verification_token"
    message = "Invalid, expired or already used verification link"
