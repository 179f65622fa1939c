# Copyright (c) OpenMMLab. All rights reserved. Adapted for sparsevit.
"""Test (and evaluate) a detector or a segmentor: mmdet 2.28.2's ``tools/test.py`` with the sparsevit plugin; a
config whose model is an mmseg 0.30 segmentor tests as mmseg's tool does (each image pre-evaluated, ``--eval mIoU``),
chosen by :func:`sparsevit.tasks.task_of`; an ``--eval`` metric of the other task is one ``error:`` line.

Differences from mmdet's tool: ``import sparsevit`` and ``apply_sparsevit_cfg`` (top-level ``pruning_ratios`` of the
original configs set the backbone's ratios; bad values are one ``error:`` line, exit status 2); ``--launcher
pytorch|mpi`` also works without CUDA (gloo, CPU DDP wrapper, results collected through ``--tmpdir`` instead of
CUDA tensors); ``fp16`` is ignored without CUDA; ``--dtype fp16|bf16`` runs inference under ``torch.autocast``
(:mod:`sparsevit.utils.precision`) and the eval json records the precision; the checkpoint is read first, and one
that cannot be read or misses weights of the model is one ``error:`` line (mmdet only warns of missing weights).
"""
import argparse
import os
import os.path as osp
import tempfile
import time
import warnings
from typing import Optional

import mmcv
import torch
import torch.distributed as dist
from mmcv import Config, DictAction
from mmcv.cnn import fuse_conv_bn
from mmcv.runner import get_dist_info, wrap_fp16_model

from mmdet.utils import build_dp, compat_cfg, get_device, get_root_logger, rfnext_init_model, setup_multi_processes

import sparsevit  # noqa: F401  (registers SparseViT)
from sparsevit.tasks import Task, TaskError, check_data, evaluation_kwargs, task_of
from sparsevit.utils.checkpoint import load_weights
from sparsevit.utils.cli import ConfigError, OneLineParser, fail
from sparsevit.utils.config import load_config as read_config
from sparsevit.utils.dist import init_dist
from sparsevit.utils.files import make_dir
from sparsevit.utils.launch import build_ddp
from sparsevit.utils.precision import DTYPES, autocast_inference, resolve_dtype


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = OneLineParser(description='Test (and eval) a detector or a segmentor (mmdet 2.28.2 / mmseg '
                                     '0.30.0 + sparsevit)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', help='output result file in pickle format')
    parser.add_argument('--dtype', choices=tuple(DTYPES), default=None,
                        help='inference precision: fp32, or autocast to fp16 (CUDA only) or bf16 (CPU and CUDA) with '
                        "mmdet's @force_fp32 steps (box decoding, NMS, RoI extraction) in fp32; given, it replaces "
                        "the config's fp16 model wrapping. Default: as mmdet (the config's fp16 on CUDA, else fp32)")
    parser.add_argument('--fuse-conv-bn', action='store_true',
                        help='Whether to fuse conv and bn, this will slightly increase the inference speed')
    parser.add_argument('--gpu-ids', type=int, nargs='+',
                        help='(Deprecated, please use --gpu-id) ids of gpus to use '
                        '(only applicable to non-distributed training)')
    parser.add_argument('--gpu-id', type=int, default=0,
                        help='id of gpu to use (only applicable to non-distributed testing)')
    parser.add_argument('--format-only', action='store_true',
                        help='Format the output results without perform evaluation. It is useful when you want to '
                        'format the result to a specific format and submit it to the test server')
    parser.add_argument('--eval', type=str, nargs='+',
                        help='evaluation metrics, which depends on the dataset, e.g., "bbox", "segm", "proposal" '
                        'for COCO, and "mAP", "recall" for PASCAL VOC; "mIoU", "mDice", "mFscore" for a segmentor')
    parser.add_argument('--show', action='store_true', help='show results')
    parser.add_argument('--show-dir', help='directory where painted images will be saved')
    parser.add_argument('--show-score-thr', type=float, default=0.3, help='score threshold (default: 0.3)')
    parser.add_argument('--gpu-collect', action='store_true', help='whether to use gpu to collect results.')
    parser.add_argument('--tmpdir', help='tmp directory used for collecting results from multiple workers, '
                        'available when gpu-collect is not specified')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override some settings in the used config, the key-value pair in xxx=yyy format '
                        'will be merged into config file. If the value to be overwritten is a list, it should '
                        'be like key="[a,b]" or key=a,b It also allows nested list/tuple values, e.g. '
                        'key="[(a,b),(c,d)]" Note that the quotation marks are necessary and that no white '
                        'space is allowed.')
    parser.add_argument('--options', nargs='+', action=DictAction,
                        help='custom options for evaluation (deprecate), use --eval-options instead.')
    parser.add_argument('--eval-options', nargs='+', action=DictAction,
                        help='custom options for evaluation, the key-value pair in xxx=yyy format will be kwargs '
                        'for dataset.evaluate() function')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if args.options and args.eval_options:
        parser.error('--options and --eval-options cannot be both specified, --options is deprecated in favor '
                     'of --eval-options')
    if args.options:
        warnings.warn('--options is deprecated in favor of --eval-options')
        args.eval_options = args.options
    if not (args.out or args.eval or args.format_only or args.show or args.show_dir):
        parser.error('specify at least one operation (save/eval/format/show the results) with the argument '
                     '"--out", "--eval", "--format-only", "--show" or "--show-dir"')
    if args.eval and args.format_only:
        parser.error('--eval and --format-only cannot be both specified')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out {args.out!r}: the output file must be a .pkl or .pickle file')
    return args


def load_config(args: argparse.Namespace) -> tuple:
    """Load and validate the test config: ``(cfg, task)`` (raises ConfigError / TaskError for bad files, values or
    an ``--eval`` metric of the other task)."""
    for what, path in (('config file', args.config), ('checkpoint', args.checkpoint)):
        if '://' not in path and not osp.isfile(path):
            raise ConfigError(f'{what} {path!r} does not exist')
    try:
        cfg = read_config(args.config, args.cfg_options, mmdet_values=True)
    except ValueError as err:
        raise ConfigError(f'{args.config}: {err}') from err
    task = task_of(cfg)
    task.check_metrics(args.eval)
    if task.name == 'detection':
        cfg = compat_cfg(cfg)
    setup_multi_processes(cfg)
    if cfg.get('cudnn_benchmark', False):
        torch.backends.cudnn.benchmark = True
    # weights come from the checkpoint: never download pre-trained backbones here
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    elif 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None
    cfg.model.train_cfg = None
    return cfg, task


def build_model(task: Task, cfg: Config, checkpoint_path: str, fuse: bool, dtype_name: Optional[str]) -> tuple:
    """The detector or segmentor with the checkpoint's weights, and the checkpoint's meta data (class names).

    mmdet's fp16 wrapping (the config's ``fp16``) applies only without ``--dtype`` and with CUDA.

    Raises:
        ValueError: one line, when the checkpoint cannot be read or misses weights of the model.
    """
    model = task.build_model(cfg.model, test_cfg=cfg.get('test_cfg'))
    if task.name == 'detection':
        rfnext_init_model(model, cfg=cfg)
    if cfg.get('fp16', None) is not None:
        if dtype_name is not None:
            get_root_logger().info(f'--dtype {dtype_name}: the config\'s fp16 model wrapping is not used')
        elif cfg.device == 'cuda':
            wrap_fp16_model(model)
        else:
            get_root_logger().warning(f'fp16 needs CUDA; the device is {cfg.device}: testing in fp32')
    checkpoint = load_weights(model, checkpoint_path, logger=get_root_logger())
    if fuse:
        model = fuse_conv_bn(model)
    return model, checkpoint.get('meta', {}) or {}


def precision_name(cfg: Config, dtype_name: Optional[str]) -> str:
    """What the eval json records: the --dtype, or the config's behaviour without it."""
    if dtype_name is not None:
        return dtype_name
    return 'fp16 (wrap_fp16_model)' if cfg.get('fp16', None) is not None and cfg.device == 'cuda' else 'fp32'


def evaluate(task: Task, cfg: Config, args: argparse.Namespace, dataset, outputs: list,
             json_file: Optional[str]) -> None:
    """Rank 0: dump, format and/or evaluate the outputs as mmdet's (mmseg's) tool does."""
    if args.out:
        print(f'\nwriting results to {args.out}')
        mmcv.dump(outputs, args.out)
    kwargs = {} if args.eval_options is None else args.eval_options
    if args.format_only:
        dataset.format_results(outputs, **kwargs)
    if args.eval:
        metric = task.evaluate(dataset, outputs, args.eval, evaluation_kwargs(cfg, kwargs))
        print(metric)
        if json_file is not None:
            mmcv.dump(dict(config=args.config, metric=metric, dtype=precision_name(cfg, args.dtype)), json_file)


def shared_tmpdir(base: str) -> str:
    """A fresh directory made by rank 0 under ``base`` and broadcast to every rank (works over gloo)."""
    box = [None]
    if get_dist_info()[0] == 0:
        mmcv.mkdir_or_exist(base)
        box[0] = tempfile.mkdtemp(dir=base)
    dist.broadcast_object_list(box, src=0)
    return box[0]


def main(argv: Optional[list] = None) -> None:
    args = parse_args(argv)
    try:
        cfg, task = load_config(args)
        cfg.gpu_ids = args.gpu_ids[0:1] if args.gpu_ids is not None else [args.gpu_id]
        cfg.device = get_device()
        try:
            dtype = resolve_dtype(args.dtype or 'fp32', cfg.device)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        distributed = args.launcher != 'none'
        if distributed:
            init_dist(launcher=args.launcher, dist_params=cfg.get('dist_params', {}))
    except (ConfigError, TaskError) as err:
        fail(__file__, err)

    task.prepare_test(cfg)
    test_loader_cfg = {**dict(samples_per_gpu=1, workers_per_gpu=2, dist=distributed, shuffle=False),
                       **cfg.data.get('test_dataloader', {})}
    try:  # the weights first: a bad checkpoint fails before the data set is read
        model, meta = build_model(task, cfg, args.checkpoint, args.fuse_conv_bn, args.dtype)
    except ValueError as err:
        fail(__file__, err)
    rank, _ = get_dist_info()
    json_file = None
    try:  # then the data and the work dir: one line each
        check_data(cfg.data.test, 'data.test')
        if args.work_dir is not None and rank == 0:
            make_dir(args.work_dir, '--work-dir')
            json_file = osp.join(args.work_dir, f"eval_{time.strftime('%Y%m%d_%H%M%S', time.localtime())}.json")
    except (TaskError, ValueError) as err:
        fail(__file__, err)

    dataset = task.build_dataset(cfg.data.test)
    data_loader = task.build_dataloader(dataset, **test_loader_cfg)
    task.set_classes(model, meta, dataset)

    if not distributed:
        model = build_dp(model, cfg.device, device_ids=cfg.gpu_ids)
        with autocast_inference(model, dtype, cfg.device):
            outputs = task.test(model, data_loader, False, metrics=args.eval, show=args.show, show_dir=args.show_dir,
                                show_score_thr=args.show_score_thr)
    else:
        model = build_ddp(model, cfg.device, device_ids=[int(os.environ['LOCAL_RANK'])], broadcast_buffers=False)
        gpu_collect = args.gpu_collect or cfg.evaluation.get('gpu_collect', False)
        if cfg.device != 'cuda':
            # mmdet collects through CUDA tensors unless given a shared tmpdir
            gpu_collect = False
            if args.tmpdir is None:
                args.tmpdir = shared_tmpdir(args.work_dir or '.dist_test')
        with autocast_inference(model, dtype, cfg.device):
            outputs = task.test(model, data_loader, True, args.tmpdir, gpu_collect, metrics=args.eval)

    if get_dist_info()[0] == 0:
        evaluate(task, cfg, args, dataset, outputs, json_file)


if __name__ == '__main__':
    main()
