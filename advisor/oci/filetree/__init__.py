"""File trees below the image layer: per-layer change sets, the merged filesystem, whiteouts,
the bytes later layers hide and dive's efficiency (``tree``, ``hidden``, ``dive``)."""

from advisor.oci.filetree.tree import FileInfo, FileTree, LayerTree

__all__ = ["FileInfo", "FileTree", "LayerTree"]
