"""Online work: materialization into Redis, streaming ingestion, and reads with statuses."""
