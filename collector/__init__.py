"""EV charging telemetry collector and logger."""

__version__ = "0.1.0"
