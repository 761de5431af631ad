"""The executor service: starts executions, advances their graphs, runs their steps and finishes them."""
