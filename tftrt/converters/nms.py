"""(family module: converters to be written)."""
