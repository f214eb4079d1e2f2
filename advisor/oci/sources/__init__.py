"""Daemonless image sources: OCI layouts and archives, docker-archive, registry v2, Docker engine.

Each source implements ``ManifestSource`` (``base``): ``root()`` names the manifest or index
the reference points at, ``read_manifest`` returns small verified JSON documents, and
``open_blob`` streams a blob while verifying its size and digest (``verify``).

- ``oci``: ``oci:DIR[:TAG]`` and ``oci-archive:FILE[:TAG]`` (read in place, never extracted)
- ``archive``: ``docker-archive:FILE[:REF]`` (``docker save`` output, several images, gzip)
- ``registry``: ``docker://`` (``RegistryClient`` also pushes, for ``advisor.oci.writer``)
- ``credentials``: ``~/.docker/config.json`` / ``DOCKER_CONFIG`` and credential helpers
- ``daemon``: ``docker-daemon:`` over the engine's unix socket (``DOCKER_HOST``)

Only ``registry`` imports ``requests``; ``advisor.oci.loader`` imports each source lazily.
"""

from advisor.oci.sources.base import ManifestSource

__all__ = ["ManifestSource"]
