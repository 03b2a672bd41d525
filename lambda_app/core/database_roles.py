"""The database roles the functions connect as.

The migration function (and the first-superuser bootstrap it runs) connects as the
schema's owner. The API connects as `API_ROLE`: it may read and write rows of the
app's tables, and nothing else, so a bug or an injection in the API cannot change
the schema, drop a table or create a role. A migration creates the role and its
grants; the CDK stack grants the API function IAM access as this role only.
"""

API_ROLE = "lambda_app_api"
