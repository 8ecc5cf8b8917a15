"""Thin Prefect tasks around the :mod:`emotion` domain package."""
