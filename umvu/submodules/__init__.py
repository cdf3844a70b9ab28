"""Submodules: one concrete thing (an image, a device) served by a module."""
