"""Example data and runnable demos (python -m poise.examples.drift_demo)."""
