"""poise: imbalance-aware AutoML that turns a task in plain words into a monitored, self-healing model."""

__version__ = "0.1.0"
