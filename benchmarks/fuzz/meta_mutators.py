"""Mutations of a model metadata dict (JSON): value types, values, depth, structure and raw text."""
import json

from . import bytes_ops

_ANY = (None, True, False, 0, -1, 1.5, float("nan"), float("inf"), 1e308, 10 ** 30, "", "x" * 100000,
        [], [1, 2, 3], {}, {"a": 1}, "224", [[[[]]]])
_SPECIFIC = {
    "image_size": (0, 7, 8, 9, 8192, 8193, -1, 1 << 63, 10 ** 30, 16.7, "16", float("nan"), True),
    "resize": (0, 1, 15, 16, 17, 10 ** 9, -1, 1 << 62, 18.5, float("inf")),
    "mean": ([0, 0], [0, 0, 0, 0], ["a", "b", "c"], [float("nan")] * 3, [1e308] * 3, [[1], [2], [3]], 5),
    "std": ([0, 0, 0], [1, 1], [-1, -1, -1], [float("nan")] * 3, [float("inf")] * 3, [1e-320] * 3, "1"),
    "class_names": ([], ["only"], [str(i) for i in range(1000)], [1, 2, 3], [None, None, None],
                    ["a", "a", "a"], ["x" * 100000, "y", "z"], "cat,dog,fox", {"0": "cat"}),
    "layout": ("nchw", "NHWC ", "HWC", "", None, 1),
    "channel_order": ("rgb", "RGBA", "GRB", "", None),
    "crop": ("none", "random", "", 0),
    "interpolation": ("nearest", "cubic", "lanczos", "bogus", ""),
    "exif_orientation": ("apply", "rotate", "", None),
    "softmax": ("yes", 1, 0, None, "false"),
    "input_name": (123, "", "nope", "x" * 1000, None, ["x"]),
    "schema_version": (0, 2, 99, "1", None, -1, 1.0),
    "arch": ("resnet", "", None, 7),
    "width": (0, -1, float("nan"), "1.0", None, 1e9),
}


def mutate_meta(rng, data, ops):
    seed = json.loads(data)
    r = rng.random()
    if r < 0.7:
        d = dict(seed)
        for _ in range(rng.choice((1, 1, 2, 3))):
            key = rng.choice(sorted(set(d) | set(_SPECIFIC)))
            how = rng.random()
            if how < 0.55 and key in _SPECIFIC:
                d[key] = rng.choice(_SPECIFIC[key])
            elif how < 0.8:
                d[key] = rng.choice(_ANY)
            elif how < 0.9:
                d.pop(key, None)
                ops.append(f"key {key} removed")
                continue
            else:
                depth = rng.choice((50, 500, 50000))
                d[key] = "@DEEP@"
                ops.append(f"key {key} nested {depth} deep")
                text = json.dumps(d).encode()
                return text.replace(b'"@DEEP@"', b"[" * depth + b"]" * depth)
            ops.append(f"key {key} -> {repr(d[key])[:60]}")
        if rng.random() < 0.1:
            d["unknown_key"] = {"nested": [1, {"x": None}]}
            ops.append("unknown key added")
        return json.dumps(d).encode()
    if r < 0.8:
        kind = rng.choice(("list", "text", "number", "null", "empty", "deep"))
        ops.append(f"top level is {kind}")
        if kind == "deep":
            return b"[" * 100000 + b"]" * 100000
        value = {"list": [seed], "text": "text", "number": 42, "null": None, "empty": []}[kind]
        return json.dumps(value).encode()
    text = json.dumps(seed).encode()
    how = rng.choice(("bom", "utf8", "literal", "dupkey", "bigint", "bytes"))
    if how == "bom":
        out = b"\xef\xbb\xbf" + text
    elif how == "utf8":
        out = text.replace(b'"cat"', b'"c\xffat"', 1) if b'"cat"' in text else b"\xff" + text
    elif how == "literal":
        lit = rng.choice((b"NaN", b"Infinity", b"-Infinity", b"1e999", b"1" * 5000, b"-0"))
        out = text.replace(b'"image_size": ', b'"image_size": ' + lit + b", \"_\": ", 1)
    elif how == "dupkey":
        out = text[:-1] + b', "image_size": "dup", "class_names": 3}'
    elif how == "bigint":
        out = text.replace(b'"resize": ', b'"resize": ' + b"9" * 4000 + b", \"_\": ", 1)
    else:
        return bytes_ops.byte_mutation(rng, text, ops)
    ops.append(f"raw JSON text: {how}")
    return out
