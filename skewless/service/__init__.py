"""The serving API: Feast-compatible online features, push, health, metrics, serving log."""
