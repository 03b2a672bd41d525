"""The migration function's own code: it ships in the migration bundle only."""
