"""Paper experiments run by ``rsfuse experiment NAME``, and the demo (``rsfuse demo``).

Each experiment module exposes ``main(argv)``; they share :mod:`rsfuse.experiments.runner`
(data synthesis and reuse, runs built from the packaged YAML configs, mean ± std over
seeds, tables and figures) and import nothing from one another.
"""
