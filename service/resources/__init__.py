"""Crossbar-style resources: one module per API resource, each a thin verb map."""
