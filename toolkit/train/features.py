"""Head mode's pooled features: from the cache when nothing changed, else extracted once.

Extraction uses exactly the eval transform (`toolkit.data.pipeline.eval_batches`, i.e. the device's
`runtime.preprocess.Preprocessor` on the run's metadata) and the frozen backbone on the engine chosen
by `extract.choose_engine`, checked against MindSpore first. The cache key holds `Preprocessor.spec()`:
every parameter of that transform and the decoder's identity.

In a data-parallel run (`dist.size > 1`) every rank extracts its contiguous slice of train and val
(`collect.shard_slice`) and MindSpore's AllGather (`collect.gather_rows`) hands every rank all rows in
dataset order, so the arrays equal a single process's; only rank 0 writes the cache. Whether the
cache is used is agreed by all ranks (a hit only if every rank hits), so no rank skips a collective.
"""
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from runtime.preprocess import Preprocessor

from . import extract
from .feature_cache import FeatureCache, cache_key
from .outputs import model_meta

log = logging.getLogger(__name__)

EXTRACT_BATCH = 32


def preprocessing(meta):
    """The transform eval_batches runs for `meta`, as data, for the cache key: every parameter of
    `Preprocessor(meta)` and the decoder's identity (its version and OpenCV's/Pillow's), so a change
    to any of them changes the key."""
    return Preprocessor(meta).spec()


def prefetch(iterator):
    """Decode the next batch in a thread while the engine runs on the current one (OpenCV
    releases the GIL)."""
    iterator = iter(iterator)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, iterator, None)
        while True:
            item = pending.result()
            if item is None:
                return
            pending = pool.submit(next, iterator, None)
            yield item


def _extract_split(extractor, samples, meta, dim, progress, label):
    from toolkit.data.pipeline import eval_batches
    out = np.zeros((len(samples), dim), np.float32)
    labels = np.zeros(len(samples), np.int32)
    n = 0
    batches = prefetch(eval_batches(samples, meta, EXTRACT_BATCH))
    steps = (len(samples) + EXTRACT_BATCH - 1) // EXTRACT_BATCH
    with progress(batches, length=steps, label=label) as bar:
        for images, y in bar:
            out[n:n + len(images)] = extractor(images)
            labels[n:n + len(images)] = y
            n += len(images)
    return out, labels


def _all_ranks_agree(flag, dist):
    """True only when `flag` is true on every rank (one AllGather; no communication in one process)."""
    if dist.size <= 1:
        return bool(flag)
    from toolkit.distributed.collect import gather_rows
    return bool(gather_rows(np.array([int(bool(flag))], np.int32), dist).min())


def _extract_shard(extractor, samples, meta, dim, progress, label, dist):
    """This rank's slice of `samples` extracted, then every rank's rows gathered in order."""
    if dist.size <= 1:
        return _extract_split(extractor, samples, meta, dim, progress, label)
    from toolkit.distributed.collect import gather_rows, shard_slice
    part = shard_slice(len(samples), dist)
    x, y = _extract_split(extractor, samples[part], meta, dim, progress,
                          f"{label} rank {dist.rank}/{dist.size}")
    return gather_rows(x, dist), gather_rows(y, dist)


def pooled_features(cfg, net, index, cache_root, progress, dist=None):
    """(arrays, info): train_x/train_y/val_x/val_y and how they were obtained (hit or extraction).

    `dist` (toolkit.distributed.context.DistInfo) shards the extraction over ranks; None is one process.
    """
    from toolkit.distributed.context import DistInfo
    dist = dist or DistInfo.single(cfg.device)
    cache = FeatureCache(cache_root)
    # Rank 0 writes the cache: it holds the folder while using it and cleans up after interrupted runs.
    with cache.claim() if dist.is_rank0 else contextlib.nullcontext():
        return _pooled_features(cfg, net, index, cache, progress, dist)


def _pooled_features(cfg, net, index, cache, progress, dist):
    from toolkit.data.pipeline import eval_batches
    cache_root = cache.root
    arrays_in = extract.backbone_arrays(net)
    meta = model_meta(cfg, index.classes)           # what the run's model.json will say
    key = cache_key(arrays_in, index.train, index.val, index.classes, preprocessing(meta),
                    cfg.image_size, cfg.arch, cfg.width)
    dim = net.backbone.out_channels
    cached = cache.load(key, dim, [s.label for s in index.train], [s.label for s in index.val],
                        index.num_classes)
    if _all_ranks_agree(cached is not None, dist):
        info = dict(cache.info(key), cache="hit", key=key)
        log.info("features: cache hit %s", key[:12])
        return cached, info
    engine = extract.choose_engine(cfg.extractor, cfg.device)
    check = next(eval_batches(index.train, meta, extract.PARITY_IMAGES))[0]
    t0 = time.perf_counter()
    # The ONNX export's scratch folder: the cache folder on rank 0, the system's temp folder elsewhere
    # (only rank 0 writes into the run).
    workdir = cache_root if dist.is_rank0 else None
    extractor, info = extract.make_extractor(engine, cfg.arch, cfg.width, arrays_in, cfg.image_size,
                                             cfg.device, workdir, check, EXTRACT_BATCH)
    train_x, train_y = _extract_shard(extractor, index.train, meta, dim, progress,
                                      f"extract train ({engine})", dist)
    val_x, val_y = _extract_shard(extractor, index.val, meta, dim, progress,
                                  f"extract val ({engine})", dist)
    elapsed = time.perf_counter() - t0
    images = len(index.train) + len(index.val)
    info.update(cache="miss", key=key, extract_s=round(elapsed, 3), images=images,
                images_per_s=round(images / elapsed, 1) if elapsed > 0 else None, workers=dist.size)
    if cache.rejected:
        info["rejected"] = cache.rejected
    arrays = {"train_x": train_x, "train_y": train_y, "val_x": val_x, "val_y": val_y}
    if dist.is_rank0:
        cache.save(key, arrays, info)
    log.info("features: extracted %d images with %s in %.1f s", images, engine, elapsed)
    return arrays, info
