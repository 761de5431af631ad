"""API keys: the routes with which admins make, list and revoke their tenant's keys."""
