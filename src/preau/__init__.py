"""Préau: publish French school data as open data, with no personal data."""

__version__ = "0.1.0"
