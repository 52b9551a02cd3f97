"""Small enrichment steps run by the pipeline's enrichment stage."""
