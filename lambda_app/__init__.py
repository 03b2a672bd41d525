"""Users and authentication API for AWS Lambda (FastAPI + Mangum + SQLAlchemy async)."""
