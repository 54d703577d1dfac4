"""Ingest: read sources of every common format, map them to canonical records, keep rejects."""
