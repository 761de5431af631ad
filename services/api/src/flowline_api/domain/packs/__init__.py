"""Packs: the namespaces of workflows, and installing a pack folder."""
