"""The workload's names, written once: the app, the CDK stack and the migrations read them.

To rename the workload, change these values (and nothing else): the stack, its
resources' names and descriptions, the database, its roles and the connections'
`application_name` all follow. A deployed stage keeps its old names until it is
replaced: renaming the database or its roles of a live stage is a migration.
"""

# Snake case: the Python package, the PostgreSQL database and the schema's owner.
NAME = "lambda_app"
# The CloudFormation stack is `<STACK_PREFIX>-<stage>`, e.g. LambdaApp-prod.
STACK_PREFIX = "LambdaApp"
# Kebab case, for resource names that allow no underscores (dashboards, alarms).
SLUG = "lambda-app"

DATABASE_NAME = NAME
# The RDS master user: owns the schema; only the migration function connects as it.
DATABASE_OWNER = NAME
# The API's own role: rows of the app's tables and nothing else, so a bug or an
# injection in the API cannot change the schema, drop a table or create a role.
# Migration 0002 creates it; the stack grants the API IAM access as this role only.
API_ROLE = f"{NAME}_api"
