"""Shared types, settings and storage that every process of the loop agrees on.

This package sits at the bottom of the import graph: it imports none of
``pipelines``, ``services``, ``models`` or ``monitoring``.
"""
