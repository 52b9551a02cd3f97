"""Connection-pool facts (size, use, wait) for statements run on a pooled connection."""
