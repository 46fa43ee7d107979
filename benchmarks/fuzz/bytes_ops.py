"""Byte-level mutations shared by every target (the unstructured baseline: flips, cuts, splices)."""

INTERESTING_32 = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                  0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def flip_bytes(rng, data, ops):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i] = rng.randrange(256)
    ops.append("flip bytes")
    return bytes(data)


def truncate(rng, data, ops):
    cut = rng.randrange(len(data)) if rng.random() < 0.7 else len(data) - rng.randint(1, min(16, len(data)))
    ops.append(f"truncate to {cut} of {len(data)} bytes")
    return data[:cut]


def overwrite_word(rng, data, ops):
    if len(data) < 8:
        return flip_bytes(rng, data, ops)
    pos = rng.randrange(len(data) - 4) & ~3
    word = rng.choice(INTERESTING_32)
    ops.append(f"word at {pos} := {word:#x}")
    return data[:pos] + word.to_bytes(4, "little") + data[pos + 4:]


def insert_junk(rng, data, ops):
    pos = rng.randrange(len(data) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.choice((1, 3, 4, 17, 256))))
    ops.append(f"insert {len(junk)} junk bytes at {pos}")
    return data[:pos] + junk + data[pos:]


def splice(rng, data, ops):
    """Copy a block of the file over another place (duplicated structures)."""
    if len(data) < 8:
        return flip_bytes(rng, data, ops)
    n = rng.randint(4, min(256, len(data) // 2))
    src, dst = rng.randrange(len(data) - n), rng.randrange(len(data) - n)
    ops.append(f"copy {n} bytes from {src} to {dst}")
    return data[:dst] + data[src:src + n] + data[dst + n:]


BYTE_MUTATORS = (flip_bytes, truncate, overwrite_word, insert_junk, splice)


def byte_mutation(rng, data, ops):
    if not data:
        ops.append("empty input")
        return data
    return rng.choice(BYTE_MUTATORS)(rng, data, ops)
