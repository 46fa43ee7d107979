"""The memory and time budget of reading an untrusted `.ms` file, as numbers in one place.

A FlatBuffer may point many offsets at one table, vector or string, and a compressed tensor may
declare dims far larger than its bytes: both let a small file ask for gigabytes. Two allowances,
both proportional to the file size S and capped, stop that BEFORE anything is allocated:

* Read allowance (what the reader builds: tables, number vectors, strings, views):
  estimated Python bytes <= READ_FACTOR * S + READ_SLACK. Every table, vector and string is
  charged each time an offset reaches it (so shared or overlapping objects are paid per reference),
  before it is materialised. Constant data is never copied: `MsTensor.data` is a read-only
  memoryview into the one file buffer, charged VIEW_COST per reference.
* Decode allowance (what loading the constants will materialise as float32 / native arrays):
  sum over constant tensors of elements * max(4, itemsize)
  <= min(DECODE_FACTOR * S + DECODE_SLACK, MAX_DECODED_BYTES), computed from the validated dims at
  read time, so a hostile file is refused by `read_ms` (and thus by inspect, load and predict) with a
  ModelFormatError instead of being decoded. DECODE_FACTOR 32 covers 1-bit packed weights
  dequantized to float32; SPARSE/INDEXING streams beyond that ratio only get DECODE_SLACK.

Time: every loop of the reader and validator is linear in what was charged (each node's producer
set is unique, the cycle search is O(nodes + edges)), hence O(S); decoding a constant is linear in
its element count, hence O(decode allowance).
"""

MAX_FILE_BYTES = 4 << 30          # larger files are refused before reading them

READ_FACTOR = 16
READ_SLACK = 16 << 20
TABLE_COST = 256                  # a Table plus the dataclass built from it (measured ~200 B)
NUMBER_COST = 40                  # one element of a tuple of Python ints / floats
STRING_COST = 64                  # per string, on top of its length
VECTOR_COST = 64                  # per vector (tuple or list object)
VIEW_COST = 200                   # a memoryview object

DECODE_FACTOR = 32
DECODE_SLACK = 64 << 20
MAX_DECODED_BYTES = 8 << 30


def read_allowance(file_size):
    """Estimated bytes of Python objects the reader may build for a file of `file_size` bytes."""
    return READ_FACTOR * file_size + READ_SLACK


def decode_allowance(file_size):
    """Bytes all constants of a file of `file_size` bytes may decode to, together."""
    return min(DECODE_FACTOR * file_size + DECODE_SLACK, MAX_DECODED_BYTES)


class BudgetExceeded(Exception):
    """Reading or decoding would pass its allowance; the message says what and by how much."""
