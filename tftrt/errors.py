"""Exceptions tftrt raises for bad input; each names the problem."""


class TftrtError(Exception):
    """Base class of tftrt's own errors."""


class SavedModelError(TftrtError, ValueError):
    """The input SavedModel is missing, malformed, or lacks the tag/signature asked for."""


class ConversionStateError(TftrtError, RuntimeError):
    """A converter method was called out of order (e.g. build() before convert())."""


class InputSpecError(TftrtError, ValueError):
    """Inference or build inputs do not match the model's signature."""


class EngineError(TftrtError, RuntimeError):
    """An engine failed to build or run and native fallback is not allowed."""


class SaveError(TftrtError, OSError):
    """The converted model could not be saved; nothing was written."""


class CalibrationError(TftrtError, ValueError):
    """INT8 calibration could not run: missing, failing or inconsistent calibration data."""


class EnvironmentVariableError(TftrtError, ValueError):
    """An environment variable tftrt reads has a value it cannot parse (see tftrt.env)."""


class PartitionError(TftrtError, ValueError):
    """A partitioner or graph pass produced segments that break the partition contract."""
