"""Every package of vdm_jax declares its public names in ``__all__``.

For each package: ``__all__`` exists, is a list or tuple of strings, has no
duplicates, and every name in it resolves (``from package import *`` works).
"""

import importlib
import pkgutil

import pytest

import vdm_jax


def _packages():
  names = [vdm_jax.__name__]
  for info in pkgutil.walk_packages(vdm_jax.__path__, vdm_jax.__name__ + "."):
    if info.ispkg:
      names.append(info.name)
  return sorted(names)


PACKAGES = _packages()


def test_every_subpackage_is_found():
  # Guards the discovery itself: a walk that finds nothing would pass vacuously.
  assert len(PACKAGES) > 10
  assert "vdm_jax.studies" in PACKAGES and "vdm_jax.flows" in PACKAGES


@pytest.mark.parametrize("name", PACKAGES)
def test_package_all(name):
  module = importlib.import_module(name)
  assert hasattr(module, "__all__"), f"{name} has no __all__"
  exported = module.__all__
  assert isinstance(exported, (list, tuple)), f"{name}.__all__ is {type(exported)}"
  assert all(isinstance(n, str) for n in exported), f"{name}.__all__ has non-str"
  dupes = sorted({n for n in exported if list(exported).count(n) > 1})
  assert not dupes, f"{name}.__all__ lists {dupes} more than once"
  missing = [n for n in exported if not hasattr(module, n)]
  assert not missing, f"{name}.__all__ names {missing}, which do not resolve"
  namespace = {}
  exec(f"from {name} import *", namespace)  # noqa: S102
  assert set(exported) <= set(namespace)
