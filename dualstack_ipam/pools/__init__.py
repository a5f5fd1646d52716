"""pools layer."""
