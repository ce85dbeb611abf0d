"""Training machinery shared by every task and pretraining method.

* :mod:`rsfuse.training.module` — :class:`~rsfuse.training.module.RsfuseModule`, the base
  LightningModule (input specification, optimiser and schedule, learning-rate scaling,
  progress counters, encoder export in one format);
* :mod:`rsfuse.training.optim` — optimisers over timm's parameter groups and timm's
  learning-rate schedulers;
* :mod:`rsfuse.training.schedules` — the cosine ramps of momentum, weight decay and
  temperature;
* :mod:`rsfuse.training.cli` — the LightningCLI of ``rsfuse fit`` and of the experiments
  (packaged configs, argument links, the one place a Trainer is built).
"""
