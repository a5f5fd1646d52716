"""bitmap layer."""
