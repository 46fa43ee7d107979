"""`toolkit bench`: a latency harness across engines and devices.

Pieces, each small and replaceable:
- `stats`    latency statistics and the timing loop (injectable clock, so they are testable);
- `plan`     the rows to run, driven by runtime.formats.ENGINES and runtime.engines.devices.probe;
- `measure`  one row, measured in the current process;
- `isolation` how a row is run: in a fresh subprocess (default) or in-process;
- `harness`  runs a plan row by row and adds accuracy/agreement;
- `reports`  terminal table, JSON, CSV and Markdown; `plot` the PNG chart.

Importing this package imports no engine framework.
"""
