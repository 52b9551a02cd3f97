"""Schema migrations as spans."""
