"""Datasets for the training side: ImageFolder scanning, generated demo data, input pipelines.

Importing this package does not import MindSpore; only `pipeline.make_loader` does.
"""
