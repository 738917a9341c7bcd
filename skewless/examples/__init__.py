"""The card-fraud example: a synthetic, seeded event generator for the example feature repo."""
