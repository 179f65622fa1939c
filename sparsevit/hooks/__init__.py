from .saa import SparsityAwareAdaptationHook, saa_rng

__all__ = ['SparsityAwareAdaptationHook', 'saa_rng']
