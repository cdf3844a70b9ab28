"""The hypervisor core: tracer, process table, syscall table, dispatch."""
