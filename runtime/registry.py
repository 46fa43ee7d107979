"""The one registrar every layer uses (runtime engines, the `.ms` translator, converter tables).

It lives in `runtime/` because that is the lowest layer: converters and toolkit may import runtime,
never the reverse. A table filled twice for one key is a programming error, so registration raises
at import time instead of letting the later function silently win.
"""


class DuplicateRegistration(ValueError):
    """Two functions were registered for the same key of one table."""


def _describe(value):
    """Where a registered value comes from: module.qualname of a function or class, else its repr
    (tables also hold instances and spec records)."""
    qualname = getattr(value, "__qualname__", None)
    if qualname is None:
        return repr(value)
    return f"{getattr(value, '__module__', '?')}.{qualname}"


def registrar(table, what="handler"):
    """A decorator factory filling `table`: `@rule("Conv", "Gemm")` maps each key to the function.

    The decorator returns what it was given, so it also registers plain values:
    `rule("cpu")(spec)` stores `spec` under "cpu".
    """
    def register(*keys):
        if not keys:
            raise TypeError(f"{what}: register at least one key")

        def deco(fn):
            for key in keys:
                if key in table:
                    raise DuplicateRegistration(
                        f"{what} for {key!r} registered twice ({_describe(table[key])} and "
                        f"{_describe(fn)})")
            for key in keys:    # all keys checked first: a refused registration changes nothing
                table[key] = fn
            return fn
        return deco
    return register
