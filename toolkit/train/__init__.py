"""The training side of `toolkit train-head`: configuration, modes, feature cache, the epoch loop.

Importing this package does not import MindSpore; the modules that need it import it where used.
"""
