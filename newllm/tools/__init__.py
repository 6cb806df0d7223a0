"""Tooling around the package: performance measurement, benchmark reports, fault injection."""
