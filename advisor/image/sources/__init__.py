"""Daemonless image sources: OCI layouts and archives, docker-archive, registry v2, Docker engine.

Each source implements ``ManifestSource`` (``advisor.image.sources.base``): ``root()`` names
the manifest or index the reference points at, ``read_manifest`` returns small verified JSON
documents, and ``open_blob`` streams a blob while verifying its size and digest.
"""

from advisor.image.sources.base import ManifestSource

__all__ = ["ManifestSource"]
