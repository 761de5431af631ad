"""The tenant's own settings: the routes with which admins set its default execution retention."""
