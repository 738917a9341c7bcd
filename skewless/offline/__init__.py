"""Offline work on history: point-in-time training sets and backfills (batch executor)."""
