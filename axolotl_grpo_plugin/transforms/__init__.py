"""Dataset transforms: one module per data source, each exposing `load(cfg, dataset_idx)`."""
