"""Inference with trained rsfuse models: self-describing bundles and whole-scene prediction.

* :mod:`rsfuse.inference.bundle`: ``rsfuse export`` writes a model bundle (safetensors +
  JSON); :func:`load_bundle` rebuilds the model from it alone.
* :mod:`rsfuse.inference.scene`: co-registered S1 / S2 scenes (multi-band GeoTIFFs or
  folders of per-band files) read by windows, with the checks made before any work.
* :mod:`rsfuse.inference.windows`: the sliding-window grid and the blending weights.
* :mod:`rsfuse.inference.outputs`: Cloud-Optimised GeoTIFF, GeoJSON and CSV writers.
* :mod:`rsfuse.inference.predict`: ``rsfuse predict``, the streaming engine.
"""

from rsfuse.inference.bundle import Bundle, export_bundle, load_bundle

__all__ = ["Bundle", "export_bundle", "load_bundle"]
