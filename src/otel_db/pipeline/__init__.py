"""The span pipeline: enrichment stages in front of the exporting processors."""
