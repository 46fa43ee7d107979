"""The one registrar every layer uses (runtime engines, the `.ms` translator, converter tables).

It lives in `runtime/` because that is the lowest layer: converters and toolkit may import runtime,
never the reverse. A table filled twice for one key is a programming error, so registration raises
at import time instead of letting the later function silently win.
"""


class DuplicateRegistration(ValueError):
    """Two functions were registered for the same key of one table."""


def registrar(table, what="handler"):
    """A decorator factory filling `table`: `@rule("Conv", "Gemm")` maps each key to the function."""
    def register(*keys):
        if not keys:
            raise TypeError(f"{what}: register at least one key")

        def deco(fn):
            for key in keys:
                if key in table:
                    raise DuplicateRegistration(
                        f"{what} for {key!r} registered twice ({table[key].__module__}."
                        f"{table[key].__qualname__} and {fn.__module__}.{fn.__qualname__})")
                table[key] = fn
            return fn
        return deco
    return register
