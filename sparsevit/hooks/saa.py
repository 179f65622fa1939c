"""Sparsity-Aware Adaptation (SAA): train one set of weights for the whole sparsity search space.

Before every training iteration the hook samples a layer-wise configuration from the search space of
:mod:`sparsevit.schedule` (per stage, ``depth // 2`` ratios drawn uniformly from the choice set, sorted ascending,
each shared by a (W-MSA, SW-MSA) block pair) and applies it to the backbone with ``set_pruning_ratios``. Outside
the training step the backbone runs at fixed ``eval_ratios``, so evaluation is reproducible. A loss that is NaN or
infinite (fp16 overflow, a diverging lr) stops the run with :class:`NonFiniteLossError` naming the iteration and the
sampled configuration, instead of training on.
"""
import math
import random
from typing import List, Mapping, Optional, Sequence

import torch.distributed as dist
from mmcv.runner import HOOKS, Hook, LoggerHook

from ..schedule import (Genes, Ratios, check_choices, format_genes, genes_to_ratios, normalize_pruning_ratios,
                        sample_genes)
from ..utils.config import get_sparse_backbone


def saa_rng(seed: int, iteration: int) -> random.Random:
    """The generator of one SAA iteration: a pure function of (seed, iteration).

    A string seed is hashed deterministically by :class:`random.Random` (independent of ``PYTHONHASHSEED``), so
    every DDP rank and a resumed run draw exactly the configuration an uninterrupted run draws at that iteration.
    """
    return random.Random(f'sparsevit-saa:{int(seed)}:{int(iteration)}')


#: Where the hook keeps its seed in ``runner.meta['hook_msgs']`` (saved in checkpoints, restored on resume).
SAA_SEED_KEY = 'saa_seed'


def resumed_hook_msgs(checkpoint: Mapping) -> dict:
    """What the hook keeps of the checkpoint a run resumes, for the new run's ``meta['hook_msgs']``: the seed
    (``{'saa_seed': seed}``; ``{}`` when the checkpoint has none). mmcv's ``EpochBasedRunner`` restores
    ``hook_msgs`` on ``resume`` itself, ``IterBasedRunner`` (mmseg's runner) does not: ``tools/train.py`` passes
    this in the run's ``meta`` for both."""
    messages = (checkpoint.get('meta') or {}).get('hook_msgs') or {}
    return {SAA_SEED_KEY: messages[SAA_SEED_KEY]} if SAA_SEED_KEY in messages else {}


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (one line: the iteration, the value, the sampled sparsity)."""


def _shared_seed(seed: int) -> int:
    """Rank 0's seed on every rank (``--diff-seed`` gives ranks different run seeds; SAA must not differ)."""
    if not (dist.is_available() and dist.is_initialized()):
        return seed
    box = [seed]
    dist.broadcast_object_list(box, src=0)
    return int(box[0])


@HOOKS.register_module()
class SparsityAwareAdaptationHook(Hook):
    """Sample a layer-wise pruning configuration before every training iteration (SparseViT's SAA).

    * ``before_train_iter``: draw a configuration with :func:`sparsevit.schedule.sample_genes` from
      :func:`saa_rng` ``(seed, runner.iter)`` and apply it with ``backbone.set_pruning_ratios``. The draw depends
      only on the seed and the global iteration, so all DDP ranks train the same configuration in each iteration
      and ``--resume-from`` continues the exact sequence.
    * ``after_train_iter`` (after the optimizer step: keep this hook's priority below the optimizer hook's
      ``ABOVE_NORMAL``, e.g. the default ``NORMAL``), ``after_train_epoch``, ``before_val_epoch`` and
      ``after_run``: restore ``eval_ratios``. Evaluation during SAA (``EvalHook``/``DistEvalHook``, priority
      ``LOW``), validation workflows and whatever runs after training therefore see a fixed configuration: by
      default the backbone's configured ratios at ``before_run``, which is dense for
      ``configs/sparsevit/mask_rcnn_sparsevit_saa.py``.

    Args:
        choices (Sequence[float], optional): the ratios a gene can take. Defaults to the original's
            ``{0, 0.1, ..., 0.8}`` (:data:`sparsevit.schedule.DEFAULT_CHOICES`).
        seed (int, optional): the seed of the sampling. Defaults to, in order: the seed of the run this one
            resumes (``--resume-from``: kept in the checkpoint's ``meta['hook_msgs']['saa_seed']``, which
            ``tools/train.py`` passes on, :func:`resumed_hook_msgs`; a resumed run gets a fresh random run seed
            unless ``--seed`` is given), the
            run's seed (``runner.meta['seed']``, set by ``tools/train.py --seed``), or 0. Rank 0's value is
            broadcast, so ``--diff-seed`` does not desynchronise ranks.
        log_interval (int, optional): log the sampled configuration every ``log_interval`` iterations to the
            runner's logger and record the mean sampled ratio in ``runner.log_buffer`` (``saa_ratio``, averaged
            into the training log lines); 0 disables both. Defaults to the interval of the runner's logger hooks
            (``log_config.interval``), or 50 without one.
        eval_ratios (optional): the ratios used outside training steps, in any form ``pruning_ratios`` accepts
            (``0`` for dense). Defaults to the backbone's configured ratios at ``before_run``.
        stop_on_nonfinite (bool): after each training iteration, check the loss the runner logged (reduced over
            the ranks by the detector's or segmentor's ``_parse_losses``, so every rank stops together) and raise
            :class:`NonFiniteLossError` when it is NaN or infinite. Default: True (the original trains on).

    Raises:
        ValueError: at construction for a bad choice set or ``log_interval``; at ``before_run`` when the model
            has no sparse backbone or ``eval_ratios`` does not fit its depths.
    """

    def __init__(self, choices: Optional[Sequence[float]] = None, seed: Optional[int] = None,
                 log_interval: Optional[int] = None, eval_ratios: Ratios = None,
                 stop_on_nonfinite: bool = True) -> None:
        self.choices = check_choices(choices)
        if log_interval is not None and (isinstance(log_interval, bool) or not isinstance(log_interval, int)
                                         or log_interval < 0):
            raise ValueError(f'SparsityAwareAdaptationHook: log_interval is {log_interval!r}; '
                             f'expected an int >= 0 (0 disables logging)')
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f'SparsityAwareAdaptationHook: seed is {seed!r}; expected an int or None')
        self.seed = seed
        self.log_interval = log_interval
        self.eval_ratios = eval_ratios
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self.current_genes: Optional[Genes] = None
        self._eval_ratios: Optional[List[List[float]]] = None
        self._seed: Optional[int] = None

    def before_run(self, runner) -> None:
        """Resolve the backbone, the fixed evaluation ratios and the (rank-independent) seed."""
        backbone = get_sparse_backbone(runner.model)
        configured = [list(stage) for stage in backbone.pruning_ratios]
        self._eval_ratios = (configured if self.eval_ratios is None
                             else normalize_pruning_ratios(self.eval_ratios, backbone.depths))
        seed = self.seed
        meta = runner.meta if isinstance(runner.meta, dict) else None
        messages = meta.setdefault('hook_msgs', {}) if meta is not None else {}
        if seed is None:
            seed = messages.get(SAA_SEED_KEY, meta.get('seed') if meta is not None else None)
        self._seed = _shared_seed(0 if seed is None else int(seed))
        messages[SAA_SEED_KEY] = self._seed  # saved in every checkpoint: a resumed run continues the sequence
        if self.log_interval is None:
            intervals = [h.interval for h in getattr(runner, 'hooks', []) if isinstance(h, LoggerHook)]
            self.log_interval = min(intervals) if intervals else 50
        runner.logger.info(f'SparsityAwareAdaptationHook: seed {self._seed}, choices {list(self.choices)}; '
                           f'outside training steps (evaluation, after training) the backbone runs at '
                           f'pruning_ratios {self._eval_ratios}')

    def before_train_iter(self, runner) -> None:
        """Sample this iteration's configuration and apply it to the backbone."""
        backbone = get_sparse_backbone(runner.model)
        genes = sample_genes(saa_rng(self._seed, runner.iter), backbone.depths, self.choices)
        backbone.set_pruning_ratios(genes_to_ratios(genes, backbone.depths))
        self.current_genes = genes
        if self.log_interval:
            runner.log_buffer.update({'saa_ratio': sum(genes.values()) / len(genes)})
            if (runner.iter + 1) % self.log_interval == 0:
                runner.logger.info(f'SAA iter {runner.iter + 1} sampled: ' +
                                   format_genes(genes).replace('\n', ', '))

    def after_train_iter(self, runner) -> None:
        if self.stop_on_nonfinite:
            self.check_loss(runner)
        self._restore(runner)

    def check_loss(self, runner) -> None:
        """Raise :class:`NonFiniteLossError` when this iteration's logged loss is NaN or infinite."""
        outputs = getattr(runner, 'outputs', None) or {}
        value = (outputs.get('log_vars') or {}).get('loss', outputs.get('loss'))
        if value is None:
            return
        value = float(value)
        if math.isfinite(value):
            return
        sampled = format_genes(self.current_genes).replace('\n', ', ') if self.current_genes else 'none'
        raise NonFiniteLossError(
            f'SAA iteration {runner.iter + 1}: the loss is {value} with the sampled sparsity {sampled}; training '
            f'stopped (the checkpoints in {getattr(runner, "work_dir", "the work dir")} are from before it: resume '
            f'from the last with a lower learning rate, fp32, or a larger loss scale)')

    def after_train_epoch(self, runner) -> None:
        self._restore(runner)

    def before_val_epoch(self, runner) -> None:
        self._restore(runner)

    def after_run(self, runner) -> None:
        self._restore(runner)

    def _restore(self, runner) -> None:
        """Put the backbone back to the fixed evaluation ratios."""
        if self._eval_ratios is not None:
            get_sparse_backbone(runner.model).set_pruning_ratios(self._eval_ratios)
