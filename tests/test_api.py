"""The module API (umvu/api.py) declares everything the core asks of modules and their
services: the core calls no operation, probes no capability and reads no attribute of a
service or module that the API does not declare (checked on the core's source)."""
import ast
from pathlib import Path

from umvu import api

CORE = Path(__file__).resolve().parents[1] / "umvu" / "core"
DECLARED = api.OPERATIONS | api.CAPABILITIES | api.HOOKS
MODULE_ATTRS = {n for n in dir(api.Module) if not n.startswith("_")} | {"api"}
SERVICE_NAMES = ("service", "svc", "hook")  # how the core names a service object


def _src(node) -> str:
    return ast.unparse(node)


def core_uses():
    """(file:line, what, name) of every request the core makes of a service/module."""
    uses = []
    for path in sorted(CORE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            where = "%s:%d" % (path.name, getattr(node, "lineno", 0))
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if name in ("call", "implements", "capability") and len(node.args) >= 2 \
                        and isinstance(node.args[1], ast.Constant) \
                        and isinstance(node.args[1].value, str):
                    uses.append((where, "service", node.args[1].value))
                if name in ("getattr", "hasattr") and len(node.args) >= 2 and \
                        _src(node.args[0]).endswith(SERVICE_NAMES) and \
                        _src(node.args[1]) != "method":  # (the gate: Hypervisor.call)
                    uses.append((where, "probe", _src(node.args[1])))
            elif isinstance(node, ast.Attribute):
                owner = _src(node.value)
                if owner.endswith(SERVICE_NAMES) and owner.split(".")[-1] in SERVICE_NAMES:
                    uses.append((where, "service", node.attr))
                elif (owner.endswith(".module") or owner in ("module", "mod")) and \
                        not node.attr.startswith("__"):
                    uses.append((where, "module", node.attr))
    return uses


def test_the_core_asks_only_what_the_api_declares():
    uses = core_uses()
    assert len({u[2] for u in uses if u[1] == "service"}) > 20  # (the scan sees them)
    undeclared = [u for u in uses if (u[1] == "service" and u[2] not in DECLARED)
                  or (u[1] == "module" and u[2] not in MODULE_ATTRS) or u[1] == "probe"]
    assert undeclared == []


def test_every_operation_and_capability_is_documented():
    doc = api.Service.__doc__
    for name in DECLARED:
        assert "%s(" % name in doc or "%s " % name in doc, name
    for name in api.OPERATIONS:
        assert getattr(api.Service, name).default  # answers ENOSYS unless defined
    for name in dir(api.HypervisorAPI):
        if not name.startswith("_"):
            assert getattr(api.HypervisorAPI, name).__doc__ or name in (
                "guest_write", "write_memory", "drop_exec_hook"), name


def test_the_core_implements_the_hypervisor_api():
    from umvu.core.hypervisor import ModuleAPI
    for name in dir(api.HypervisorAPI):
        if not name.startswith("_"):
            assert getattr(ModuleAPI, name) is not getattr(api.HypervisorAPI, name), name


def test_no_import_from_the_core_up_to_the_modules():
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith(("umvu.modules", "umvu.submodules")), path
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("umvu.modules", "umvu.submodules")), path
