"""The log-ingest service: consumes task log records and writes them to PostgreSQL in batches."""
