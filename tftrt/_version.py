"""The tftrt release (one place, read by the package and by the manifests it writes)."""

__version__ = "0.1.0"
