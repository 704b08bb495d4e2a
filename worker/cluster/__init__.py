"""What a worker needs to share a scan with other processes: the Redis implementations of
the engine's backends (worker/nse/backends.py)."""
