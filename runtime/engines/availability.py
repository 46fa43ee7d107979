"""Whether a Python package (and so an engine) can be imported, without importing it.

Its own module so that device probing (devices.py) and the engine registry (__init__.py) share it
without the probes importing the registry package.
"""
import importlib.util


def is_importable(package):
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def engine_importable(entry):
    """True when every package the engine needs (entry.requires) can be imported."""
    return all(is_importable(name) for name in entry.requires)
