from lambda_app.core.errors import AppError, Throttled


class UserNotFound(AppError):
    status_code = 404
    code = "user_not_found"
    message = "User not found"


class UsernameTaken(AppError):
    status_code = 409
    code = "username_taken"
    message = "This username is already taken"


class EmailTaken(AppError):
    status_code = 409
    code = "email_taken"
    message = "This email is already registered"


class CannotDeleteSelf(AppError):
    status_code = 403
    code = "cannot_delete_self"
    message = "A superuser cannot delete their own account"


class CannotChangeOwnCredentials(AppError):
    status_code = 403
    code = "cannot_change_own_credentials"
    message = (
        "A superuser changes their own email with PATCH /api/users/me and their own"
        " password with POST /api/users/me/password, both with the current password"
    )


class LastSuperuser(AppError):
    status_code = 409
    code = "last_superuser"
    message = "This would leave no active superuser"


class CurrentPasswordRequired(AppError):
    """A new email sent without `current_password`: refused as the password change
    refuses a body without one, a 422 naming the missing field."""

    status_code = 422
    code = "validation_error"
    message = "The request is invalid"
    details = (
        {"loc": ["body", "current_password"], "message": "Field required", "type": "missing"},
    )


class WrongCurrentPassword(AppError):
    status_code = 400
    code = "wrong_current_password"
    message = "The current password is incorrect"


class TooManyPasswordAttempts(Throttled):
    code = "too_many_password_attempts"
    message = "Too many wrong passwords for this account, try again later"


class EmailAlreadyVerified(AppError):
    status_code = 409
    code = "email_already_verified"
    message = "This email address is already verified"


class TooManyEmails(Throttled):
    code = "too_many_emails"
    message = "Too many emails sent to this address, try again later"
