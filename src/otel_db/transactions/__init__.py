"""Transaction spans and the outcome of every statement run inside a transaction."""
