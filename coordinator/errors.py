"""The coordinator's errors are the worker's (both sides raise them; the worker defines them)."""
from worker.errors import UsageError, UserError

__all__ = ["UsageError", "UserError"]
