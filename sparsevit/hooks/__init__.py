"""Training hooks: Sparsity-Aware Adaptation (:mod:`.saa`), one seeded random layer-wise sparsity per iteration,
the same on every rank; registered into mmcv's ``HOOKS``."""
from .saa import SparsityAwareAdaptationHook, saa_rng

__all__ = ['SparsityAwareAdaptationHook', 'saa_rng']
