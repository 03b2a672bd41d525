"""The migration function's own code: it ships in the migration bundle only.

runner      the one entry point, `run_migration(request, config=...)`, and where the
            shipped scripts are
actions     the request: the actions and their rules
deadline    when a run must be over, and the function timeout it comes from
timeouts    the deadline enforced: on the server, per statement, and on the client
lock        the advisory lock that serializes runs
commands    Alembic's commands, in-process, one transaction per revision
superuser   the first superuser, after an upgrade
result      what a run reports
errors      what a failure may report (no SQL parameters)
settings    the function's settings
"""
