"""skelrecall: Skeleton Recall Loss, its baselines, topology metrics and experiments."""

__version__ = "0.1.0"
