"""Built-in op converters, one module per op family.

The public surface for converter authors is re-exported here.
"""

from tftrt.converters.base import collect, converter
from tftrt.converters.context import (
    NCHW_TO_NHWC,
    NHWC_TO_NCHW,
    LoweringContext,
    NodeInfo,
)

__all__ = ["NCHW_TO_NHWC", "NHWC_TO_NCHW", "LoweringContext", "NodeInfo", "collect", "converter"]
