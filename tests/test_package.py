"""The package's table of contents."""

import pkgutil

import segcore


def test_segcore_docstring_names_every_module():
    modules = [m.name for m in pkgutil.iter_modules(segcore.__path__)]
    assert "tiles" in modules and "overlays" in modules
    assert [m for m in modules if f"``{m}``" not in segcore.__doc__] == []
