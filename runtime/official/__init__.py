"""The official MindSpore Lite programs (`converter_lite`, `benchmark`) as peers of this project.

Driven through their public command lines only, so that the same code works with a real release
package (`mindspore-lite-*-linux-x64/`) and with the stand-ins `../shared/mslite/build.sh` builds.
`discovery` finds them, `benchmark_cli` runs and parses `benchmark`, `golden_data` writes and reads the
files `benchmark` consumes. Nothing here imports onnx, onnxruntime or MindSpore.
"""
