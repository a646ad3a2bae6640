"""Asset groups, one module per concern, each exposing `build_defs(cfg) -> dg.Definitions`."""
