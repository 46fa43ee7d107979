"""Reading JSON the project wrote (metadata, configs, resume state) as untrusted input, within bounds.

A JSON file can be hostile in ways `json.load` does not guard against: a huge file is read whole into
memory, and a document nested 100,000 deep makes the parser raise RecursionError (or worse). So the
reader caps the size (read at most `max_bytes` + 1 bytes), checks the nesting depth on the text before
parsing, and refuses duplicate keys (which JSON parsers resolve differently); every failure is
`error(message)` naming the file.
"""
import json
import re

from .files import read_regular

MAX_JSON_BYTES = 16 << 20        # configs, resume state: far below this
MAX_JSON_DEPTH = 64              # our documents nest 3 deep at most
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def nesting_depth(text):
    """Deepest bracket nesting of a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    for ch in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_json_text(text, source, error, what="JSON", max_depth=MAX_JSON_DEPTH):
    """Parse JSON `text` (str or UTF-8 bytes) read from `source`; raises error(message) naming it."""
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8")
    except ValueError as e:
        raise error(f"{source}: cannot read {what}: {e}") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{source}: cannot read {what}: nested {depth} deep (at most {max_depth})")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as e:       # JSONDecodeError and duplicate keys included
        raise error(f"{source}: cannot read {what}: {e}") from None


def read_json(path, error, missing="not found", what="JSON", max_bytes=MAX_JSON_BYTES,
              max_depth=MAX_JSON_DEPTH):
    """Parse `path`; a missing, unreadable, oversized, too deep or malformed file raises
    `error(message)` naming it."""
    def refuse(p, problem):
        return error(f"{p}: {missing}" if problem == "no such file" else f"{p}: cannot read {what}: {problem}")
    data = read_regular(path, max_bytes, refuse, what=what)
    return parse_json_text(data, path, error, what, max_depth)
