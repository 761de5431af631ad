"""Data access: the PostgreSQL tables, their migrations, the connection pool and the functions over their rows."""
