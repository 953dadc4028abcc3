"""The implementations under test behind one base (harness.backends.base): the reference labs
(reference), and the network backends (the CNI plugin chain and netavark in harness.cni, and
third parties'), found through the ``netconform.backends`` entry-point group (registry)."""
from harness.backends.base import Attachment, Backend, NetworkBackend
from harness.backends.reference import ReferenceBackend
from harness.backends.registry import GROUP, Registry, installed

__all__ = ["Backend", "NetworkBackend", "Attachment", "ReferenceBackend", "GROUP", "Registry", "installed"]
