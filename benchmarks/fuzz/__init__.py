"""Structured fuzzing of every untrusted input the toolkit reads: `.ms`, ONNX, MINDIR, images, metadata.

Each target has a seed corpus the project builds itself (corpus.py), mutators that change structure
and not only bytes (ms_mutators, onnx_mutators, proto_mutators, image_mutators, meta_mutators), and a
consumer that goes through the public API (targets.py). Every case runs in its own forked process
under a memory cap and a wall timeout (harness.py) and ends in one outcome class: ran, typed,
other-exception, crash, hang, memory. The campaign command (`python -m benchmarks.fuzz`) and the test
slice (tests/test_fuzz_slice.py) use the same code.
"""
