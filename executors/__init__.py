"""Executor plugins, one folder each, behind the interface in :mod:`.api`."""
