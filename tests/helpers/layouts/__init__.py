"""Fixture generators of real dataset layouts, one module per task.

Each ``write_<dataset>(root, ...)`` writes a few items exactly as the dataset ships (official
folder names, file suffixes, split names, id conventions, field names and dtypes), written from
the dataset's own documentation, not from the synthetic worlds' habits. App tests run ``fit``,
``evaluate`` and ``predict`` on them.
"""
