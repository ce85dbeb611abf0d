"""Published pretrained weights in and out.

* :func:`import_weights` (``rsfuse weights import``): the checkpoints the SSL4EO-S12, DINO-MM
  and CromSS authors published, and TorchGeo's re-hosted copies, as rsfuse encoder files
  (safetensors + JSON with the bands in order, the normalisation the weights expect and
  their source) that the tasks load through ``encoder_checkpoints`` /
  ``encoder_checkpoint``; a CromSS U-Net also as a segmentation bundle.
* :func:`export_encoders` (``rsfuse export --format timm|torchgeo``): rsfuse encoders for
  ``timm.create_model(..., pretrained_cfg_overlay=dict(file=...))`` and TorchGeo.
* :mod:`rsfuse.weights.torchgeo_adapters`: rsfuse datamodules feeding TorchGeo trainers and
  TorchGeo datasets feeding rsfuse tasks.

One concept per module: :mod:`~rsfuse.weights.checkpoint_io` (reading without running code),
:mod:`~rsfuse.weights.layouts` (wrappers and prefixes), :mod:`~rsfuse.weights.sources` (the
publishers), :mod:`~rsfuse.weights.architectures` (timm / smp models behind the keys),
:mod:`~rsfuse.weights.channels` (band order), :mod:`~rsfuse.weights.normalization` (what
the weights expect), :mod:`~rsfuse.weights.importer`, :mod:`~rsfuse.weights.exporters`.
``docs/weights.md`` lists where each fact was read.
"""

from rsfuse.weights.exporters import export_encoders
from rsfuse.weights.importer import import_weights

__all__ = ["export_encoders", "import_weights"]
