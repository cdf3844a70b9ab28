"""Modules: one kind of virtualization each, with a syscall-shaped API."""
