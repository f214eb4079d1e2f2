"""advisor: find the bloat in ML container images, export to ONNX, build a slim image."""

__version__ = "0.1.0"
