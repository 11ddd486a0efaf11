"""Each stage's public namespace: every exported name is the object its submodule defines, unknown names fail
like any missing attribute, and importing the namespace alone stays cheap (no torch) for the CLI."""

import importlib
import subprocess
import sys

import pytest

LAZY = ("roomtone.prepare", "roomtone.expect", "roomtone.train")   # train imports torch (its evaluate is eager)


@pytest.mark.parametrize("package", LAZY)
def test_every_exported_name_is_its_submodules_object(package):
    pkg = importlib.import_module(package)
    assert pkg.__all__ and set(pkg.__all__) <= set(dir(pkg))
    for name in pkg.__all__:
        obj = getattr(pkg, name)
        assert obj.__module__.startswith(package + "."), (name, obj.__module__)
        assert getattr(importlib.import_module(obj.__module__), name) is obj, name


def test_the_stage_functions_import_from_their_stage():
    from roomtone.expect import expect, quick_baseline
    from roomtone.prepare import AddNoise, mix_at_snr, prepare, synthetic_events
    from roomtone.prepare.noise import mix_at_snr as core

    assert mix_at_snr is core and AddNoise.__module__.endswith("add_noise")
    assert (prepare.__module__, expect.__module__) == ("roomtone.prepare.pipeline", "roomtone.expect.run")
    assert callable(quick_baseline) and callable(synthetic_events)


@pytest.mark.parametrize("package", LAZY)
def test_unknown_names_raise_attribute_error(package):
    pkg = importlib.import_module(package)
    with pytest.raises(AttributeError, match="no_such_name"):
        pkg.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        exec(f"from {package} import no_such_name")


def test_importing_the_namespaces_does_not_import_torch():
    code = "import sys, roomtone.prepare, roomtone.expect; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
