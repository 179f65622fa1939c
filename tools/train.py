# Copyright (c) OpenMMLab. All rights reserved. Adapted for sparsevit.
"""Train a detector or a segmentor: mmdet 2.28.2's ``tools/train.py`` with the sparsevit plugin; a config whose
model is an mmseg 0.30 segmentor (``EncoderDecoder``) trains as mmseg's tool does (``train_segmentor``, its
iteration-based runner), chosen by :func:`sparsevit.tasks.task_of`.

Differences from mmdet's tool:
    * ``import sparsevit`` registers the SparseViT backbone and the SAA hook; ``apply_sparsevit_cfg`` maps the
      original's top-level ``pruning_ratios`` / ``random_sample`` keys and validates them before anything is built
      (a bad value is one ``error:`` line and exit status 2).
    * ``--launcher pytorch|mpi`` also works without CUDA: the process group uses ``gloo`` and the model is wrapped in
      :class:`MMDistributedDataParallelAnyDevice` (mmcv's wrapper assumes CUDA and, with torch >= 2, breaks in
      ``forward``). ``fp16`` is dropped with a warning when there is no CUDA.
    * Sparse models (SAA or fixed ratios) train under DDP with ``find_unused_parameters=True`` unless the config
      sets it: a block that keeps no window (small maps, high ratios) leaves its parameters without gradients.
    * Segmentors: ``SyncBN`` becomes ``BN`` without CUDA (torch's ``SyncBatchNorm`` is CUDA-only).

The distributed set-up (:func:`sparsevit.utils.dist.init_dist`, :mod:`sparsevit.utils.launch`) is shared with
``tools/test.py``.
"""
import argparse
import copy
import os
import os.path as osp
import time
import warnings
from typing import Optional

import torch
import torch.distributed as dist
from mmcv import Config, DictAction
from mmcv.runner import get_dist_info
from mmcv.utils import get_logger

from mmdet.apis import init_random_seed, set_random_seed
from mmdet.utils import collect_env, find_latest_checkpoint, get_device, rfnext_init_model, setup_multi_processes

import sparsevit  # noqa: F401  (registers SparseViT / SparsityAwareAdaptationHook)
from sparsevit.hooks.saa import NonFiniteLossError, resumed_hook_msgs
from sparsevit.schedule import is_dense
from sparsevit.tasks import TaskError, check_data, task_of
from sparsevit.utils.checkpoint import checkpoint_state_dict, read_checkpoint
from sparsevit.utils.cli import ConfigError, OneLineParser, fail
from sparsevit.utils.config import SAA_HOOK, SPARSE_BACKBONES, load_config as read_config
from sparsevit.utils.dist import group_backend, init_dist
from sparsevit.utils.files import make_dir


def drop_fp16_without_cuda(cfg: Config, device: str, logger) -> None:
    """Remove ``cfg.fp16`` (mmcv's fp16 hooks need CUDA) with a logged warning when ``device`` is not CUDA."""
    if device != 'cuda' and cfg.get('fp16', None) is not None:
        logger.warning(f'fp16 training needs CUDA; the device is {device}: dropping fp16={cfg.fp16} and running '
                       f'in fp32')
        cfg.fp16 = None


def uses_sparsity(cfg: Config) -> bool:
    """True when the backbone is sparse and prunes (fixed ratios > 0) or is trained with SAA."""
    backbone = cfg.model.get('backbone', {})
    if backbone.get('type') not in SPARSE_BACKBONES:
        return False
    saa = any(h.get('type') == SAA_HOOK for h in (cfg.get('custom_hooks', None) or []))
    return saa or not is_dense(backbone.get('pruning_ratios') or [[0.0]])


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------
def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = OneLineParser(description='Train a detector or a segmentor (mmdet 2.28.2 / mmseg 0.30.0 + '
                                     'sparsevit)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume-from', help='the checkpoint file to resume from')
    parser.add_argument('--auto-resume', action='store_true',
                        help='resume from the latest checkpoint automatically')
    parser.add_argument('--no-validate', action='store_true',
                        help='whether not to evaluate the checkpoint during training')
    group_gpus = parser.add_mutually_exclusive_group()
    group_gpus.add_argument('--gpus', type=int,
                            help='(Deprecated, please use --gpu-id) number of gpus to use '
                            '(only applicable to non-distributed training)')
    group_gpus.add_argument('--gpu-ids', type=int, nargs='+',
                            help='(Deprecated, please use --gpu-id) ids of gpus to use '
                            '(only applicable to non-distributed training)')
    group_gpus.add_argument('--gpu-id', type=int, default=0,
                            help='id of gpu to use (only applicable to non-distributed training)')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument('--diff-seed', action='store_true',
                        help='Whether or not set different seeds for different ranks')
    parser.add_argument('--deterministic', action='store_true',
                        help='whether to set deterministic options for CUDNN backend.')
    parser.add_argument('--options', nargs='+', action=DictAction,
                        help='override some settings in the used config (deprecate), use --cfg-options instead.')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override some settings in the used config, the key-value pair in xxx=yyy format '
                        'will be merged into config file. If the value to be overwritten is a list, it should '
                        'be like key="[a,b]" or key=a,b It also allows nested list/tuple values, e.g. '
                        'key="[(a,b),(c,d)]" Note that the quotation marks are necessary and that no white '
                        'space is allowed. E.g. pruning_ratios="[[0.3,0.3],[0,0],[0.1,0.1,0.2,0.2,0.2,0.2],[0,0]]"')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--auto-scale-lr', action='store_true', help='enable automatically scaling LR.')
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.options and args.cfg_options:
        parser.error('--options and --cfg-options cannot be both specified, --options is deprecated in favor of '
                     '--cfg-options')
    if args.options:
        warnings.warn('--options is deprecated in favor of --cfg-options')
        args.cfg_options = args.options
    return args


def load_config(args: argparse.Namespace) -> Config:
    """Load the config, apply ``--cfg-options`` and the sparsevit keys, and validate (raises ConfigError)."""
    if not osp.isfile(args.config):
        raise ConfigError(f'config file {args.config!r} does not exist')
    try:
        cfg = read_config(args.config, args.cfg_options, mmdet_values=True)
    except ValueError as err:
        raise ConfigError(f'{args.config}: {err}') from err
    if args.resume_from is not None:
        if not osp.isfile(args.resume_from):
            raise ConfigError(f'--resume-from {args.resume_from!r} does not exist')
        check_checkpoint(args.resume_from)
    load_from = cfg.get('load_from', None)
    if load_from and args.resume_from is None and not args.auto_resume and '://' not in load_from:
        if not osp.isfile(load_from):
            raise ConfigError(f'load_from {load_from!r} does not exist (train its stage first, or override with '
                              f'--cfg-options load_from=PATH)')
        check_checkpoint(load_from)
    return cfg


def check_checkpoint(path: str) -> None:
    """Read a local checkpoint before anything is built: ConfigError (one line) if it is not a readable
    checkpoint holding weights (mmcv would fail with a traceback once training starts)."""
    try:
        checkpoint_state_dict(read_checkpoint(path), path)
    except ValueError as err:
        raise ConfigError(str(err)) from err


def configure(cfg: Config, args: argparse.Namespace) -> None:
    """mmdet's CLI-driven settings: auto-scale-lr, work_dir, resume, gpu ids."""
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            warnings.warn('Can not find "auto_scale_lr" or "auto_scale_lr.enable" or '
                          '"auto_scale_lr.base_batch_size" in your configuration file.')
    setup_multi_processes(cfg)
    if cfg.get('cudnn_benchmark', False):
        torch.backends.cudnn.benchmark = True
    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.resume_from is not None:
        cfg.resume_from = args.resume_from
    cfg.auto_resume = args.auto_resume
    if args.gpus is not None:
        cfg.gpu_ids = range(1)
        warnings.warn('`--gpus` is deprecated: only single GPU mode in non-distributed training. Use `gpus=1`.')
    if args.gpu_ids is not None:
        cfg.gpu_ids = args.gpu_ids[0:1]
        warnings.warn('`--gpu-ids` is deprecated, please use `--gpu-id`. Use the first GPU in `gpu_ids` now.')
    if args.gpus is None and args.gpu_ids is None:
        cfg.gpu_ids = [args.gpu_id]


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    try:
        cfg = load_config(args)
        task = task_of(cfg)
        configure(cfg, args)
        check_data(cfg.data.train, 'data.train')
        if not args.no_validate:
            check_data(cfg.data.get('val'), 'data.val')
        # init distributed env first, since logger depends on the dist info.
        distributed = args.launcher != 'none'
        if distributed:
            init_dist(launcher=args.launcher, dist_params=cfg.get('dist_params', {}))
            backend = group_backend()
            _, world_size = get_dist_info()
            cfg.gpu_ids = range(world_size)
        make_dir(osp.abspath(cfg.work_dir), 'work_dir')
    except (ConfigError, TaskError, ValueError) as err:
        fail(__file__, err)

    cfg.dump(osp.join(cfg.work_dir, osp.basename(args.config)))
    timestamp = time.strftime('%Y%m%d_%H%M%S', time.localtime())
    log_file = osp.join(cfg.work_dir, f'{timestamp}.log')
    # the root logger of the task's package ('mmdet' / 'mmseg'): the one its runner and hooks log to
    logger = get_logger(task.package, log_file=log_file, log_level=cfg.log_level)

    meta = dict()
    env_info = '\n'.join([f'{k}: {v}' for k, v in collect_env().items()])
    dash_line = '-' * 60 + '\n'
    logger.info('Environment info:\n' + dash_line + env_info + '\n' + dash_line)
    meta['env_info'] = env_info
    meta['config'] = cfg.pretty_text
    resume = cfg.get('resume_from') or (find_latest_checkpoint(cfg.work_dir) if cfg.get('auto_resume') else None)
    if resume:  # the SAA seed of the run it continues (IterBasedRunner.resume does not restore hook_msgs)
        try:
            meta['hook_msgs'] = resumed_hook_msgs(read_checkpoint(resume))
        except ValueError as err:
            fail(__file__, err)
    logger.info(f'Task: {task.name} ({task.package} {task.model_kind})')
    logger.info(f'Distributed training: {distributed}' + (f' (backend {backend})' if distributed else ''))
    logger.info(f'Config:\n{cfg.pretty_text}')

    cfg.device = get_device()
    drop_fp16_without_cuda(cfg, cfg.device, logger)
    if distributed and uses_sparsity(cfg) and 'find_unused_parameters' not in cfg:
        logger.info('sparse backbone under DDP: find_unused_parameters=True (blocks that keep no window have no '
                    'gradients)')
        cfg.find_unused_parameters = True
    seed = init_random_seed(args.seed, device=cfg.device)
    seed = seed + dist.get_rank() if args.diff_seed else seed
    logger.info(f'Set random seed to {seed}, deterministic: {args.deterministic}')
    set_random_seed(seed, deterministic=args.deterministic)
    cfg.seed = seed
    meta['seed'] = seed
    meta['exp_name'] = osp.basename(args.config)

    model = task.build_model(cfg.model, train_cfg=cfg.get('train_cfg'), test_cfg=cfg.get('test_cfg'))
    model.init_weights()
    if task.name == 'detection':
        rfnext_init_model(model, cfg=cfg)

    datasets = [task.build_dataset(cfg.data.train)]
    if len(cfg.workflow) == 2:
        assert 'val' in [mode for (mode, _) in cfg.workflow]
        val_dataset = copy.deepcopy(cfg.data.val)
        val_dataset.pipeline = cfg.data.train.get('pipeline', cfg.data.train.get('dataset', {}).get('pipeline'))
        datasets.append(task.build_dataset(val_dataset))
    if cfg.checkpoint_config is not None:
        # the package's version and the class names (mmseg: and the palette) in checkpoints as meta data
        cfg.checkpoint_config.meta = task.checkpoint_meta(datasets[0])
    task.set_classes(model, {}, datasets[0])
    try:
        task.train(model, datasets, cfg, distributed=distributed, validate=(not args.no_validate),
                   timestamp=timestamp, meta=meta)
    except NonFiniteLossError as err:  # the SAA hook's check: one line, the log file has the rest
        logger.error(str(err))
        fail(__file__, err)


if __name__ == '__main__':
    main()
