"""Prefect flows: compositions of :mod:`tasks`, plus the ``emotion`` CLI."""
