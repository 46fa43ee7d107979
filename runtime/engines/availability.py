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
    """True when every package the engine needs (entry.requires) can be imported and the official
    program it drives (entry.program), if any, is found."""
    if not all(is_importable(name) for name in entry.requires):
        return False
    return not entry.program or program_found(entry.program)[0]


def program_found(program):
    """(found, reason) for an official MindSpore Lite program (runtime.official.discovery)."""
    from ..official.discovery import probe
    tool, reason = probe(program)
    return tool is not None, reason
