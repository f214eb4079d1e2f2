"""File trees below the image layer, as dive's ``filetree`` is: per-layer change sets and the
merged filesystem (``tree``), merging with whiteouts in one pass (``merge``), the bytes later
layers hide (``hidden``) and dive's efficiency score (``dive``)."""

from advisor.oci.filetree.hidden import HiddenFile
from advisor.oci.filetree.merge import Merged, merge_layers
from advisor.oci.filetree.tree import FileInfo, FileTree, LayerTree

__all__ = ["FileInfo", "FileTree", "HiddenFile", "LayerTree", "Merged", "merge_layers"]
