"""Tasks: what differs between instance segmentation / detection (mmdet 2.28 detectors) and semantic segmentation
(mmseg 0.30 segmentors) behind one small interface, chosen by the config's model type, so the same tools
(``tools/train.py``, ``tools/test.py``, ``tools/search.py``, ``tools/measure_latency.py``) serve both.

:func:`task_of` returns the :class:`~.base.Task` of a config: :data:`~.segmentation.SEGMENTATION` for a model
whose ``type`` is an mmseg segmentor (``EncoderDecoder``, ``CascadeEncoderDecoder``), else
:data:`~.detection.DETECTION`. Each task builds the model and the data sets, trains with its package's runner set-up
(``train_detector`` / ``train_segmentor``, both with the CPU-capable DDP wrapper), tests, evaluates, and names the
metrics it accepts, so a flag of the wrong kind (``--eval bbox`` on a segmentor) fails with one line.
"""
from .base import Task, TaskError, check_data, evaluation_kwargs, task_of

__all__ = ['Task', 'TaskError', 'check_data', 'evaluation_kwargs', 'task_of']
