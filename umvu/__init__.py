"""umvu: a partial virtual machine hypervisor in user space (VUOS lineage)."""
__version__ = "0.1.0"
