"""Sparsity-Aware Adaptation hook: the sampled space, seeding, DDP agreement, restoration for evaluation."""
import logging
import os.path as osp
from functools import partial
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmcv import Config
from mmcv.runner import HOOKS, LogBuffer
from mmcv.utils import build_from_cfg

from sparsevit.hooks import SparsityAwareAdaptationHook, saa_rng
from sparsevit.schedule import DEFAULT_CHOICES, gene_names, genes_to_ratios, sample_genes
from sparsevit.utils.config import SAA_HOOK, apply_sparsevit_cfg

from helpers import free_port, tiny_backbone

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SAA_DEMO = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_sparsevit_saa_demo.py')
DEPTHS = (2, 2, 6, 2)
CFG1 = ((.3, .3), (0., 0.), (.1, .1, .2, .2, .2, .2), (0., 0.))
DENSE = tuple((0.0,) * d for d in DEPTHS)


# saa_backbone(pruning_ratios=None): embed 8, one head per stage; unseeded, left in training mode
saa_backbone = partial(tiny_backbone, seed=None, train=True, embed_dims=8, depths=DEPTHS, num_heads=(1, 1, 1, 1))


def fake_runner(backbone, seed=0, logger=None) -> SimpleNamespace:
    return SimpleNamespace(model=SimpleNamespace(backbone=backbone), meta=dict(seed=seed), iter=0,
                           logger=logger or logging.getLogger('test_saa'), log_buffer=LogBuffer())


def run_iters(hook, runner, iters, restored=None) -> list:
    """The per-block ratios applied in each of ``iters``; checks restoration (default: to the configured ratios)."""
    configured = runner.model.backbone.pruning_ratios if restored is None else restored
    sampled = []
    for it in iters:
        runner.iter = it
        hook.before_train_iter(runner)
        sampled.append(runner.model.backbone.pruning_ratios)
        hook.after_train_iter(runner)
        assert runner.model.backbone.pruning_ratios == configured
    return sampled


def assert_in_space(ratios, choices=DEFAULT_CHOICES):
    assert tuple(len(stage) for stage in ratios) == DEPTHS
    for stage in ratios:
        assert all(r in choices for r in stage), stage
        assert list(stage) == sorted(stage), f'not monotone: {stage}'
        for j in range(0, len(stage), 2):
            assert stage[j] == stage[j + 1], f'W-MSA/SW-MSA pair not shared: {stage}'


def test_samples_change_every_iteration_and_respect_the_space():
    runner = fake_runner(saa_backbone(), seed=3)
    hook = SparsityAwareAdaptationHook()
    hook.before_run(runner)
    sampled = run_iters(hook, runner, range(40))
    for ratios in sampled:
        assert_in_space(ratios)
    assert all(a != b for a, b in zip(sampled, sampled[1:]))
    first_gene = {ratios[0][0] for ratios in sampled}
    assert len(first_gene) >= 6, 'the first gene should range over most of the choice set'
    assert hook.current_genes is not None and list(hook.current_genes) == gene_names(DEPTHS)


def test_custom_choices_and_the_registry():
    hook = build_from_cfg(dict(type=SAA_HOOK, choices=[0.5, 0.0, 0.25]), HOOKS)
    runner = fake_runner(saa_backbone())
    hook.before_run(runner)
    for ratios in run_iters(hook, runner, range(10)):
        assert_in_space(ratios, choices=(0.0, 0.25, 0.5))


def test_seeded_reproducible_and_resumable():
    def sequence(seed, iters):
        runner = fake_runner(saa_backbone(), seed=seed)
        hook = SparsityAwareAdaptationHook()
        hook.before_run(runner)
        return run_iters(hook, runner, iters)

    full = sequence(7, range(12))
    assert sequence(7, range(12)) == full
    assert sequence(7, range(6, 12)) == full[6:], 'a resumed run must continue the same sequence'
    assert sequence(8, range(12)) != full
    explicit = SparsityAwareAdaptationHook(seed=7)
    runner = fake_runner(saa_backbone(), seed=123)  # an explicit seed wins over the run's seed
    explicit.before_run(runner)
    assert run_iters(explicit, runner, range(12)) == full
    expected = genes_to_ratios(sample_genes(saa_rng(7, 5), DEPTHS), DEPTHS)
    assert full[5] == tuple(tuple(s) for s in expected)


def test_restores_configured_or_given_eval_ratios():
    runner = fake_runner(saa_backbone(pruning_ratios=CFG1))
    hook = SparsityAwareAdaptationHook()
    hook.before_run(runner)
    run_iters(hook, runner, range(3))  # checks restoration to cfg1 after every iteration
    for event in ('after_train_epoch', 'before_val_epoch', 'after_run'):
        hook.before_train_iter(runner)
        getattr(hook, event)(runner)
        assert runner.model.backbone.pruning_ratios == CFG1

    runner = fake_runner(saa_backbone(pruning_ratios=CFG1))
    hook = SparsityAwareAdaptationHook(eval_ratios=0)
    hook.before_run(runner)
    run_iters(hook, runner, range(2), restored=DENSE)


def test_logs_the_sampled_configuration(caplog):
    logger = logging.getLogger('test_saa.log')
    runner = fake_runner(saa_backbone(), logger=logger)
    hook = SparsityAwareAdaptationHook(log_interval=2)
    hook.before_run(runner)
    with caplog.at_level(logging.INFO, logger='test_saa.log'):
        run_iters(hook, runner, range(4))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('SAA iter')]
    assert len(lines) == 2 and lines[0].startswith('SAA iter 2 sampled: backbone.stages.0 : ')
    assert 'saa_ratio' in runner.log_buffer.val_history and len(runner.log_buffer.val_history['saa_ratio']) == 4


@pytest.mark.parametrize('kwargs,message', [
    (dict(choices=[0.1, 1.0]), 'allowed range is'),
    (dict(choices=[]), 'empty'),
    (dict(log_interval=-1), 'log_interval'),
    (dict(seed='x'), 'seed'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparsityAwareAdaptationHook(**kwargs)


def test_bad_model_or_eval_ratios():
    with pytest.raises(ValueError, match='sparse backbone'):
        SparsityAwareAdaptationHook().before_run(fake_runner(torch.nn.Linear(2, 2)))
    with pytest.raises(ValueError, match='has 3 stages'):
        SparsityAwareAdaptationHook(eval_ratios=[0, 0, 0]).before_run(fake_runner(saa_backbone()))


def _rank_worker(rank: int, world_size: int, port: int, queue) -> None:
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world_size)
    try:
        runner = fake_runner(saa_backbone(), seed=100 + rank)  # as with --diff-seed: the run seeds differ
        hook = SparsityAwareAdaptationHook()
        hook.before_run(runner)
        queue.put((rank, run_iters(hook, runner, range(5))))
    finally:
        dist.destroy_process_group()


def test_all_ranks_sample_the_same_configuration():
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_rank_worker, args=(rank, 2, port, queue)) for rank in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results[0] == results[1]
    runner = fake_runner(saa_backbone(), seed=100)  # rank 0's seed
    hook = SparsityAwareAdaptationHook()
    hook.before_run(runner)
    assert run_iters(hook, runner, range(5)) == results[0]


def test_saa_training_on_synthetic_data(synthetic_coco, tmp_path):
    """A few real SAA iterations with mmdet's train_detector: new valid config each iteration, dense evaluation.

    An IterBasedRunner evaluates in ``after_train_iter`` (EvalHook, priority LOW): the hook must have restored the
    configured ratios by then.
    """
    from mmdet.apis import train_detector
    from mmdet.datasets import build_dataset
    from mmdet.models import build_detector

    from sparsevit.datasets.synthetic import synthetic_cfg_options

    cfg = Config.fromfile(SAA_DEMO)
    cfg.merge_from_dict(dict(synthetic_cfg_options(synthetic_coco), **{
        'load_from': None, 'data.samples_per_gpu': 1, 'data.workers_per_gpu': 0, 'evaluation.interval': 4,
        'log_config.interval': 1, 'checkpoint_config.interval': 100}))
    cfg.runner = dict(type='IterBasedRunner', max_iters=4)
    apply_sparsevit_cfg(cfg)
    assert any(h['type'] == SAA_HOOK for h in cfg.custom_hooks)
    cfg.custom_hooks = [dict(h, seed=11, log_interval=1) if h['type'] == SAA_HOOK else h for h in cfg.custom_hooks]
    cfg.update(dict(work_dir=str(tmp_path), gpu_ids=[0], device='cpu', seed=0, fp16=None))

    model = build_detector(cfg.model, train_cfg=cfg.get('train_cfg'), test_cfg=cfg.get('test_cfg'))
    model.init_weights()
    datasets = [build_dataset(cfg.data.train)]
    model.CLASSES = datasets[0].CLASSES
    seen = []
    model.backbone.register_forward_pre_hook(
        lambda module, args: seen.append((module.training, module.pruning_ratios)))
    configured = model.backbone.pruning_ratios
    assert configured == DENSE

    train_detector(model, datasets, cfg, distributed=False, validate=True, meta=dict(seed=0))

    train = [r for training, r in seen if training]
    evals = [r for training, r in seen if not training]
    assert len(train) == 4 and len(evals) == 4  # 4 iterations, then 4 val images
    for ratios in train:
        assert_in_space(ratios)
    assert all(a != b for a, b in zip(train, train[1:]))
    assert train == [tuple(tuple(s) for s in genes_to_ratios(sample_genes(saa_rng(11, i), DEPTHS), DEPTHS))
                     for i in range(4)]
    assert all(r == configured for r in evals), 'evaluation must run at the configured (dense) ratios'
    assert model.backbone.pruning_ratios == configured


def test_a_non_finite_loss_stops_the_run_naming_the_iteration_and_the_sparsity():
    from sparsevit.hooks.saa import NonFiniteLossError
    runner = fake_runner(saa_backbone(), seed=3)
    hook = SparsityAwareAdaptationHook()
    hook.before_run(runner)
    run_iters(hook, runner, range(3))  # no outputs, then finite losses: training goes on
    for value in (float('nan'), float('inf'), torch.tensor(float('-inf'))):
        runner.iter = 3
        hook.before_train_iter(runner)
        runner.outputs = dict(loss=torch.tensor(1.0), log_vars=dict(loss=value))
        with pytest.raises(NonFiniteLossError) as err:
            hook.after_train_iter(runner)
        message = str(err.value)
        assert message.startswith('SAA iteration 4: the loss is ') and '\n' not in message
        assert 'backbone.stages.0 : ' in message and 'backbone.stages.3 : ' in message
    runner.outputs = dict(log_vars=dict(loss=0.5))
    hook.after_train_iter(runner)
    off = SparsityAwareAdaptationHook(stop_on_nonfinite=False)
    off.before_run(runner)
    runner.outputs = dict(log_vars=dict(loss=float('nan')))
    off.after_train_iter(runner)  # the original's behaviour: trains on


def test_a_resumed_run_keeps_the_seed_of_the_run_it_continues():
    """``--resume-from`` without ``--seed`` gives the new run a random seed: the hook takes the seed the checkpoint
    recorded (``meta['hook_msgs']``, restored by mmcv's ``resume``), so the sequence continues."""
    first = fake_runner(saa_backbone(), seed=11)
    hook = SparsityAwareAdaptationHook()
    hook.before_run(first)
    full = run_iters(hook, first, range(8))
    assert first.meta['hook_msgs']['saa_seed'] == 11
    resumed = fake_runner(saa_backbone(), seed=987654)  # a fresh random run seed
    resumed.meta['hook_msgs'] = dict(first.meta['hook_msgs'])  # what resume() restores from the checkpoint
    again = SparsityAwareAdaptationHook()
    again.before_run(resumed)
    assert run_iters(again, resumed, range(4, 8)) == full[4:]
