"""``make experiments``: SparseViT's claims as comparisons at matched latency (``tools/experiments.py``, the CLI).

The pipeline runs its steps (data, trainings, latency runs, search, tests, analyses) as subprocesses; everything
but the pipeline and the latency driver is plain functions on plain data, testable with constructed inputs in
milliseconds (``tests/test_experiments*.py``):

* :mod:`.pipeline` — the steps of ``run`` in order (:class:`~.pipeline.Pipeline`) and the rows of the table;
* :mod:`.steps` — how a step runs: its log, its reuse marker, the progress line (:class:`~.steps.Runner`);
* :mod:`.latency` — the latency driver (``latency SPEC --out OUT``): every backbone of a spec timed back to back
  in interleaved rounds, with its GMACs;
* :mod:`.pickers` — the reduced input sizes at matched latency, the search's relative budgets, the config options
  of the runs;
* :mod:`.settings` — the ``EXPERIMENTS_*`` settings (one dataclass, one flag and one variable per field);
* :mod:`.plan` — the runs of a pipeline in order and the time estimate printed before anything runs;
* :mod:`.matching` — matched latency by construction: a budget's best search candidates, and the pick of the
  best one within ±3 % of its baseline's measured latency (else "not matched");
* :mod:`.width` — the reduced-width dense baselines (embed dims x 0.75, x 0.5) as config options;
* :mod:`.noise` — latency spread across rounds, and paired bootstrap intervals of mAP differences over val images
  for table rows (a row may average several evaluations, e.g. random-window seeds);
* :mod:`.report` — the records, comparisons, verdicts, ``results.md`` / ``results.json`` and ``tradeoff.png``;
* :mod:`.files` — atomic JSON files (every step's output);
* :mod:`.demo_report` — the smaller pipeline's table: ``make demo``'s results (``tools/demo_report.py``).
"""
