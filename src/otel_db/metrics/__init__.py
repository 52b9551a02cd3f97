"""Database client metrics (semantic-conventions names): pools and operation durations."""
