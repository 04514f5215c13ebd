"""Research tools: comparing partitioners on a set of models (``tftrt compare-partitioners``)."""
