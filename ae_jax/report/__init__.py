"""Rendering: HTML pages, CSV tables and the shared figure helpers."""
