"""Pure tensor operations, the bottom layer (no mmdet, no model): window arithmetic, scores, ranking,
gather/scatter (:mod:`.window`) and the window selectors (:mod:`.selection`: L2, random, traced top-k)."""
