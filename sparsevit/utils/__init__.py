"""What the tools, the search and the experiments share:

* :mod:`.cli` — the tools' command line: the one-line error parser, argument types, one-line errors, JSON output;
* :mod:`.config` — reading a config (:func:`~.config.load_config`) with the original's top-level keys applied and
  validated;
* :mod:`.checkpoint` — reading detector checkpoints with one-line errors;
* :mod:`.latency` — timing primitives: protocols, backbone and detector latency, the interleaved timer, ``--compile``;
* :mod:`.precision` — the dtype policy of ``--dtype`` (autocast, mmdet's fp32 steps kept in fp32);
* :mod:`.dist` — the one process-group initialiser (torchpack or an mmdet ``--launcher``) and the collectives;
* :mod:`.launch` — the DDP wrapper of the mmdet tools that also runs on CPU.
"""
