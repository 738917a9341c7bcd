"""The feature repo: loading definitions, planning changes, applying them to Feast and the DB."""
