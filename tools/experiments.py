"""``make experiments``: SparseViT's claims as comparisons at matched latency, on the small-objects synthetic data.

    bash tools/experiments.sh                     # = python tools/experiments.py run (what `make experiments` runs)
    python tools/experiments.py run --dry-run     # the schedule and the time estimate only
    python tools/experiments.py latency SPEC --out OUT   # the back-to-back latency driver (one process)
    python tools/experiments.py report [DIR]      # the table and the plot again, from DIR's outputs

The comparisons (the paper's Fig. 1 and ablations), on the variant of the synthetic dataset that SparseViT targets
(:data:`sparsevit.datasets.synthetic.SMALL_OBJECTS`: 448 px images, 4-12 shapes of 4-12 % of the side, some
clustered, most of the image background), with the demo's narrow Swin Mask R-CNN, trained here from scratch:

1. sparsity vs resolution: the configurations of one multi-budget search vs the dense model finetuned and tested at
   reduced input sizes; the sizes are picked by their measured backbone latency and set the search's budgets;
2. window selection: L2-norm vs random windows (``window_selection='random'``) at the searched ratios;
3. non-uniform vs uniform: the searched configuration vs the one uniform ratio of closest latency;
4. with vs without SAA: the SAA weights vs the dense weights (finetuned as long, without sparsity) at the searched
   ratios.

Schedule (fairness: every model compared got the same training after the dense training): dense training
(``--dense-epochs``); the dense backbone timed at the full size and at every multiple of 32 down to half of it,
and the sparsest configuration, to pick the sizes; then, each for ``--adapt-epochs`` with one schedule
(``configs/experiments/mask_rcnn_swin_finetune_small_objects.py``): Sparsity-Aware Adaptation, a dense finetune at
the full size and a dense finetune at each picked size; the picked sizes and the full size timed again, the
budgets being each picked size's latency as a fraction of the full size's (``--budgets 0.712x ...``: the search
resolves them against its own dense latency, so the machine's speed at search time cannot unmatch them); one
multi-budget search on the SAA weights, scored on the held-out ``search`` split; every backbone timed back to back
in one process (interleaved rounds, median); tools/test.py on the val split for every row; ``results.md``,
``results.json`` and ``tradeoff.png``. Sparse models are evaluated straight from the SAA weights (no
per-configuration finetune), so they and the resolution baselines had exactly the same epochs after the dense
training.

A run is reused when it succeeded before with the same command (a marker under ``DIR/done/``);
``EXPERIMENTS_FORCE=1`` (``--force``) redoes everything, and once one run is redone every later one is too.
Knobs: the ``EXPERIMENTS_*`` environment variables, the defaults of the ``run`` flags (``run --help``).
"""
import argparse
import dataclasses
import glob
import json
import logging
import os
import os.path as osp
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

warnings.filterwarnings('ignore', message='On January 1, 2023, MMCV', category=UserWarning)
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
PROG = 'experiments.py'

CFG_DIR = 'configs/experiments'
DENSE_CFG = f'{CFG_DIR}/mask_rcnn_swin_small_objects.py'
FINETUNE_CFG = f'{CFG_DIR}/mask_rcnn_swin_finetune_small_objects.py'
SPARSE_CFG = f'{CFG_DIR}/mask_rcnn_sparsevit_small_objects.py'
SAA_CFG = f'{CFG_DIR}/mask_rcnn_sparsevit_saa_small_objects.py'

#: The uniform ratios timed for the uniform baseline (the search space's choices above 0).
UNIFORM_RATIOS = tuple(round(0.1 * i, 1) for i in range(1, 9))
#: The resolution picker's latency window, as fractions of the dense latency at the full size: a size must save at
#: least 15 % (else it is no budget) and stay above the sparsest SparseViT configuration by 5 % (else the search has
#: nothing to choose from).
MAX_LATENCY_FRAC = 0.85
FLOOR_MARGIN = 1.05
SIZE_STEP = 32  # reduced sizes are multiples of the pipelines' Pad size_divisor: the backbone sees exactly them

#: The time estimate printed up front, in seconds at 448 px on a quiet 2-core CPU: per training image (batch 4), the
#: part of it that does not scale with the pixel count (heads, losses, data), per test image (flat: dominated by the
#: RoI heads and mask pasting), per backbone forward (batch 4), per process start (imports, model and data set-up),
#: and an SAA iteration relative to a dense one (sampled sparse forwards skip windows). Calibrated from one-thread
#: CPU times per iteration (robust on a shared machine: 2.03 s per training batch at 448, 1.64 at 384, 1.32 at
#: 320, 1.42 for SAA, 0.75 for the demo's 224; 0.3 s per test image at any size) divided by a 2-thread speed-up
#: of 1.5 (training) and 1.2 (testing); the same model gives the demo's measured 15 minutes. The remaining time is
#: rescaled on the fly by the measured/estimated ratio of the runs done.
CALIBRATION = dict(train_img_s=0.34, train_fixed=0.3, test_img_s=0.25, forward_s=0.2, start_s=10.0, saa=0.7)
TABLE_FORWARDS = 60  # the search's latency table, in full forwards: 192 stage entries x (warm-up + timed) / ~16

#: The comparisons: title, the two methods compared (the first is SparseViT's), what differs.
COMPARISONS = (
    ('Sparsity vs resolution', 'resolution', 'sparsevit',
     'dense model at a reduced input size vs SparseViT at the full size; budget i = the latency of size i'),
    ('Window selection', 'random', 'sparsevit',
     'random windows vs L2-norm windows, same ratios and weights (SAA, trained with L2 selection)'),
    ('Non-uniform vs uniform sparsity', 'uniform', 'sparsevit',
     'one ratio for every block, the one of closest latency, vs the searched per-block ratios (SAA weights)'),
    ('With vs without SAA', 'no_saa', 'sparsevit',
     'the dense weights finetuned as long without sparsity vs the SAA weights, at the searched ratios'),
)
METHOD_LABELS = dict(resolution='dense, lower resolution', sparsevit='SparseViT (searched, L2, SAA)',
                     random='random windows (searched ratios)', uniform='uniform ratio (SAA)',
                     no_saa='searched ratios, no SAA')
REFERENCE_LABELS = dict(resolution='dense, full resolution', sparsevit='SparseViT (SAA weights), dense')
METRICS = ('bbox_mAP', 'segm_mAP', 'bbox_mAP_s', 'bbox_mAP_m', 'segm_mAP_s', 'segm_mAP_m')


class ExperimentError(Exception):
    """Reported as one ``experiments.py: error: ...`` line; exit ``status``: 2 for bad input (a setting, a missing
    or malformed file given), 1 for a failed run."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Settings:
    """What ``run`` does; each field has an environment variable ``EXPERIMENTS_<FIELD>`` and a flag."""
    dir: str = 'work_dirs/experiments'
    data: str = 'data/sparsevit_experiments'
    img_size: int = 448
    num_train: int = 250
    num_val: int = 100
    num_search: int = 50
    dense_epochs: int = 8
    adapt_epochs: int = 3
    budgets: int = 3
    search_steps: int = 36
    population: int = 12
    parents: int = 6
    latency_rounds: int = 3
    latency_batch: int = 4
    latency_warmup: int = 2
    latency_repeats: int = 8
    np: int = 2
    seed: int = 0
    force: bool = False

    def check(self) -> None:
        """Raise ExperimentError naming the first bad value and what is allowed."""
        for name in ('num_train', 'num_val', 'num_search', 'dense_epochs', 'adapt_epochs', 'budgets',
                     'search_steps', 'latency_rounds', 'latency_batch', 'latency_repeats', 'np'):
            if getattr(self, name) < 1:
                raise ExperimentError(f'{knob(name)} must be >= 1, got {getattr(self, name)}')
        if self.latency_warmup < 0:
            raise ExperimentError(f'{knob("latency_warmup")} must be >= 0, got {self.latency_warmup}')
        if self.img_size < 4 * SIZE_STEP or self.img_size % SIZE_STEP:
            raise ExperimentError(f'{knob("img_size")} must be a multiple of {SIZE_STEP} and >= {4 * SIZE_STEP}, '
                                  f'got {self.img_size}')
        if self.parents < 2 * self.budgets or self.population < self.parents:
            raise ExperimentError(f'{knob("parents")} must be >= 2 x budgets ({2 * self.budgets}: two per budget) '
                                  f'and {knob("population")} >= parents; got parents {self.parents}, population '
                                  f'{self.population}')


#: What each setting means (``run --help``).
SETTING_HELP = dict(
    dir='output directory', data='data root of the small-objects dataset (written if missing)',
    img_size='full input size and image size of the data (a multiple of 32)', num_train='training images',
    num_val='val images (the results table)', num_search='held-out images the search scores candidates on',
    dense_epochs='epochs of the dense training', adapt_epochs='epochs of SAA and of each dense finetune',
    budgets='latency budgets = reduced input sizes compared', search_steps='search steps (candidates drawn)',
    population='search population (shared by the budgets)', parents='search parents (at least 2 per budget)',
    latency_rounds='interleaved rounds of the latency measurements (median reported)',
    latency_batch='batch of the latency measurements', latency_warmup='untimed forwards per latency measurement',
    latency_repeats='timed forwards per latency measurement', np='search processes (torchpack dist-run)',
    seed='seed of data, training and search', force='redo every step')


def knob(field: str) -> str:
    """How a setting is named to the user: ``EXPERIMENTS_IMG_SIZE (--img-size)``."""
    return f"EXPERIMENTS_{field.upper()} (--{field.replace('_', '-')})"


def parse_setting(field: dataclasses.Field, text: str):
    """The value of ``text`` for ``field``; ExperimentError when it does not parse."""
    if field.type is bool:
        if text.strip().lower() not in ('0', '1', 'true', 'false', 'yes', 'no', ''):
            raise ExperimentError(f'EXPERIMENTS_{field.name.upper()}={text!r}: expected 0 or 1')
        return text.strip().lower() in ('1', 'true', 'yes')
    try:
        return field.type(text)
    except ValueError:
        raise ExperimentError(f'EXPERIMENTS_{field.name.upper()}={text!r} is not a valid '
                              f'{field.type.__name__}') from None


def settings_from(env: Mapping[str, str], overrides: Optional[dict] = None) -> Settings:
    """Settings from the ``EXPERIMENTS_*`` variables of ``env``, then ``overrides`` (flags given); validated."""
    values = {}
    for field in dataclasses.fields(Settings):
        text = env.get(f'EXPERIMENTS_{field.name.upper()}', '')
        if text != '':
            values[field.name] = parse_setting(field, text)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    settings = Settings(**values)
    settings.check()
    return settings


# ----------------------------------------------------------------------------------------------------------------
# Pure helpers: sizes, pickers, options
# ----------------------------------------------------------------------------------------------------------------
def size_ladder(full: int, step: int = SIZE_STEP, min_frac: float = 0.5) -> List[int]:
    """Reduced input sizes to time: multiples of ``step`` below ``full`` down to ``min_frac * full``, descending."""
    return [s for s in range(full - step, int(min_frac * full) - 1, -step) if s > 0]


def pick_resolutions(dense_ms: Mapping[int, float], full: int, k: int, floor_ms: float,
                     max_frac: float = MAX_LATENCY_FRAC, margin: float = FLOOR_MARGIN) -> List[int]:
    """The matched-latency resolution picker: the ``k`` largest reduced sizes whose dense backbone latency is at
    most ``max_frac`` of the full size's and at least ``margin`` x ``floor_ms`` (the sparsest SparseViT
    configuration at the full size: a budget below it cannot be met). Descending sizes, with strictly decreasing
    latencies (a smaller size timed no faster than a larger one, noise on a busy machine, is left out), so each
    size sets its own budget.

    Raises:
        ExperimentError: when no size qualifies.
    """
    top = dense_ms[full]
    fit = []
    for s in sorted(dense_ms, reverse=True):
        ms = dense_ms[s]
        if s < full and margin * floor_ms <= ms <= max_frac * top and (not fit or ms < dense_ms[fit[-1]]):
            fit.append(s)
    if not fit:
        timed = ', '.join(f'{s}: {ms:.1f} ms' for s, ms in sorted(dense_ms.items(), reverse=True))
        raise ExperimentError(f'no reduced input size has a dense latency in [{margin * floor_ms:.1f}, '
                              f'{max_frac * top:.1f}] ms (sparsest SparseViT {floor_ms:.1f} ms; timed {timed}); '
                              f'try another {knob("img_size")}')
    return fit[:k]


def match_uniform(target_ms: float, uniform_ms: Mapping[float, float]) -> float:
    """The uniform ratio whose latency is closest to ``target_ms`` (ties: the smaller ratio)."""
    return min(sorted(uniform_ms), key=lambda r: abs(uniform_ms[r] - target_ms))


def budget_text(fraction: float) -> str:
    """A budget as given to tools/search.py (and in its output names): a fraction of the dense latency, three
    decimals and the ``x`` that marks it relative (e.g. ``0.712x``)."""
    return f'{fraction:.3f}x'


def budget_fractions(dense_ms: Mapping[int, float], full: int, sizes: Sequence[int]) -> List[float]:
    """Each picked size's dense latency as a fraction of the full size's, timed in the same run: the search's
    relative budgets (it resolves them against the dense latency it predicts itself, so a change of machine speed
    between this measurement and the search cannot move them)."""
    return [dense_ms[r] / dense_ms[full] for r in sizes]


def schedule_options(epochs: int) -> List[str]:
    """``--cfg-options`` giving a config ``epochs`` epochs with its one lr step before the last epoch."""
    return [f'runner.max_epochs={epochs}', f'lr_config.step=[{max(1, epochs - 1)}]']


def resolution_options(cfg, size: int) -> List[str]:
    """``--cfg-options`` setting the input size of every pipeline of ``cfg`` (an mmcv Config) to ``size``: the
    ``img_scale`` of each Resize (train) and MultiScaleFlipAug (test) step, found by index."""
    options = []
    for split in ('train', 'val', 'test'):
        for i, step in enumerate(cfg.data[split].pipeline):
            if step['type'] in ('Resize', 'MultiScaleFlipAug') and 'img_scale' in step:
                options.append(f'data.{split}.pipeline.{i}.img_scale=({size},{size})')
    if len(options) != 3:
        raise ExperimentError(f'expected one img_scale per pipeline (train, val, test), found {len(options)}')
    return options


def ratios_option(ratios) -> str:
    """``pruning_ratios=[[...],...]`` for ``--cfg-options`` (no spaces)."""
    return 'pruning_ratios=' + json.dumps([[float(r) for r in stage] for stage in ratios], separators=(',', ':'))


def read_pruning_ratios(path: str) -> list:
    """The top-level ``pruning_ratios`` literal of a config written by tools/search.py."""
    import ast
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'pruning_ratios' for t in node.targets):
            return ast.literal_eval(node.value)
    raise ExperimentError(f'{path} sets no pruning_ratios')


def sparsity_text(ratios: Optional[Sequence[Sequence[float]]]) -> str:
    """Genes per stage (one ratio per W-MSA/SW-MSA pair), e.g. ``0.3 / 0 / 0.1 0.2 0.2 / 0``; ``dense``;
    ``uniform 0.4``."""
    if ratios is None or all(r == 0 for stage in ratios for r in stage):
        return 'dense'
    flat = {r for stage in ratios for r in stage}
    if len(flat) == 1:
        return f'uniform {flat.pop():g}'
    return ' / '.join(' '.join(f'{stage[j]:g}' for j in range(0, len(stage), 2)) for stage in ratios)


# ----------------------------------------------------------------------------------------------------------------
# The latency driver: every backbone built in one process and timed in interleaved rounds
# ----------------------------------------------------------------------------------------------------------------
def build_backbones(config: str, entries: Sequence[dict]) -> Dict[str, object]:
    """One SparseSwinTransformer per entry from ``config``'s backbone (random weights: latency does not depend on
    them), with the entry's ``pruning_ratios`` and ``backbone`` overrides (e.g. ``window_selection``)."""
    from mmcv import Config
    from mmdet.models import build_backbone
    import sparsevit  # noqa: F401  (registers SparseViT)
    from sparsevit.utils.config import apply_sparsevit_cfg
    cfg = apply_sparsevit_cfg(Config.fromfile(config))
    base = dict(cfg.model.backbone)
    base.pop('init_cfg', None)
    base.pop('pretrained', None)
    base['type'] = 'SparseSwinTransformer'
    return {e['name']: build_backbone(dict(base, pruning_ratios=e.get('pruning_ratios'), **e.get('backbone', {})))
            for e in entries}


def time_interleaved(names: Sequence[str], rounds: int, measure: Callable[[str], float],
                     on_round: Optional[Callable[[int], None]] = None) -> Dict[str, List[float]]:
    """``measure(name)`` for every name, round after round (the order reversed every other round, so no model is
    always timed right after the same one): per name, one latency per round."""
    times = {n: [] for n in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else list(reversed(names))):
            times[name].append(measure(name))
        if on_round is not None:
            on_round(r)
    return times


def run_latency(spec: dict) -> dict:
    """Time the spec's backbones back to back; the result per entry: median over rounds, every round's value."""
    import torch
    from sparsevit.utils.latency import measure_backbone_latency
    entries = spec['entries']
    backbones = build_backbones(spec['config'], entries)
    sizes = {e['name']: int(e['img_size']) for e in entries}

    def measure(name: str) -> float:
        return measure_backbone_latency(backbones[name], img_size=sizes[name], batch_size=spec['batch_size'],
                                        num_warmup=spec['warmup'], num_repeats=spec['repeats'],
                                        device='cpu')['latency_ms']

    start = time.perf_counter()
    times = time_interleaved([e['name'] for e in entries], spec['rounds'], measure,
                             lambda r: print(f'latency round {r + 1}/{spec["rounds"]} done '
                                             f'({time.perf_counter() - start:.0f} s)', flush=True))
    results = {e['name']: dict(e, latency_ms=statistics.median(times[e['name']]), runs_ms=times[e['name']])
               for e in entries}
    return dict(results=results, batch_size=spec['batch_size'], warmup=spec['warmup'], repeats=spec['repeats'],
                rounds=spec['rounds'], threads=torch.get_num_threads(), torch=torch.__version__,
                seconds=time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------------------------
# The plan: which runs, what they cost
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One evaluated model of the results table."""
    name: str
    method: str  # resolution | sparsevit | random | uniform | no_saa
    img_size: int
    pruning_ratios: Optional[list]
    config: str
    checkpoint: str
    weights: str
    latency_key: str
    budget: Optional[int] = None  # index of the latency budget (and of the resolution that set it)
    options: List[str] = dataclasses.field(default_factory=list)

    @property
    def run_name(self) -> str:
        return f'test_{self.name}'


def nominal_sizes(st: Settings) -> List[int]:
    """The sizes the picker is expected to choose (for the estimate before anything is measured)."""
    return [st.img_size - SIZE_STEP * (i + 2) for i in range(st.budgets)]


def planned_runs(st: Settings, sizes: Optional[Sequence[int]] = None) -> List[Tuple[str, float]]:
    """Every run of the pipeline in order, with its estimated seconds (from :data:`CALIBRATION`)."""
    c, s = CALIBRATION, st.img_size
    sizes = list(sizes) if sizes is not None else nominal_sizes(st)
    k = len(sizes)

    def px(size: int) -> float:
        return (size / 448) ** 2

    def train(epochs: int, size: int, factor: float = 1.0) -> float:
        per_img = c['train_img_s'] * (c['train_fixed'] + (1 - c['train_fixed']) * px(size)) * factor
        return c['start_s'] + epochs * st.num_train * per_img

    def test(size: int) -> float:
        return c['start_s'] + st.num_val * c['test_img_s']

    def latency(entries: Sequence[int]) -> float:
        per = st.latency_rounds * (st.latency_warmup + st.latency_repeats) * c['forward_s'] * st.latency_batch / 4
        return c['start_s'] + per * sum(px(e) for e in entries)

    search = (c['start_s'] + TABLE_FORWARDS * c['forward_s'] * px(s) * st.latency_batch / 4
              + st.search_steps * (st.num_search * c['test_img_s'] * 1.2 / st.np + 1.0))  # one thread per process
    runs = [('data', 0.07 * (st.num_train + st.num_val + st.num_search) * px(s)),
            ('train_dense', train(st.dense_epochs, s)),
            ('latency_plan', latency([s, *size_ladder(s), s])),
            ('train_saa', train(st.adapt_epochs, s, c['saa'])),
            ('finetune_full', train(st.adapt_epochs, s))]
    runs += [(f'finetune_res{i + 1}', train(st.adapt_epochs, r)) for i, r in enumerate(sizes)]
    runs += [('latency_budgets', latency([s, *sizes])), ('search', search), ('latency', latency([s, *sizes, *[s] * (2 * k + len(UNIFORM_RATIOS))]))]
    runs += [('test_dense', test(s))] + [(f'test_res{i + 1}', test(r)) for i, r in enumerate(sizes)]
    runs += [('test_saa_dense', test(s))]
    for method in ('sparsevit', 'random', 'uniform', 'nosaa'):
        runs += [(f'test_{method}_b{i + 1}', test(s)) for i in range(k)]
    return runs + [('report', 5.0)]


def minutes(seconds: float) -> str:
    return f'{seconds / 60:.0f} min' if seconds >= 90 else f'{seconds:.0f} s'


# ----------------------------------------------------------------------------------------------------------------
# Running steps: logs, reuse markers, progress
# ----------------------------------------------------------------------------------------------------------------
class Runner:
    """Runs the pipeline's steps with a log each, reuses finished ones, prints one progress line per run.

    A step is reused when ``DIR/done/NAME.json`` records the same ``key`` (its command) and no earlier step ran in
    this invocation (a redone step invalidates everything after it) and ``--force`` is off.
    """

    def __init__(self, st: Settings, estimates: Sequence[Tuple[str, float]], python: str):
        self.st, self.python = st, python
        self.estimates = dict(estimates)
        self.order = [name for name, _ in estimates]
        self.cascade = st.force
        self.start = time.time()
        self.spent = {}  # name -> (estimated, actual) of the runs executed now
        self.reused = 0
        os.makedirs(self.path('logs'), exist_ok=True)
        os.makedirs(self.path('done'), exist_ok=True)

    def path(self, *parts: str) -> str:
        return osp.join(self.st.dir, *parts)

    def drop(self, name: str) -> None:
        """Remove a planned run that will not happen (e.g. a budget without a configuration)."""
        if name in self.estimates:
            del self.estimates[name]
            self.order.remove(name)

    def log(self, message: str) -> None:
        print(f"[experiments {time.strftime('%H:%M:%S')}] {message}", flush=True)

    def remaining(self, after: str) -> float:
        """Estimated seconds of the runs after ``after``, rescaled by this machine's measured/estimated ratio."""
        rest = sum(self.estimates[n] for n in self.order[self.order.index(after) + 1:])
        done_est = sum(e for e, _ in self.spent.values())
        ratio = sum(a for _, a in self.spent.values()) / done_est if done_est > 30 else 1.0
        return rest * ratio

    def step(self, name: str, title: str, key, action: Callable[[str], None]) -> bool:
        """Run ``action(log_path)`` as step ``name`` unless reusable; True when it ran."""
        index = self.order.index(name) + 1
        marker = self.path('done', f'{name}.json')
        key = json.loads(json.dumps(key))  # as it is stored (tuples become lists)
        prefix = f'{index}/{len(self.order)} {title}'
        if not self.cascade and osp.isfile(marker) and _read_json(marker).get('key') == key:
            self.reused += 1
            self.log(f'{prefix}: reused (EXPERIMENTS_FORCE=1 redoes it)')
            return False
        self.cascade = True
        if osp.isfile(marker):
            os.remove(marker)
        self.log(f'{prefix} (about {minutes(self.estimates[name])}) ...')
        t0 = time.time()
        action(self.path('logs', f'{name}.log'))
        seconds = time.time() - t0
        self.spent[name] = (self.estimates[name], seconds)
        _write_json(marker, dict(key=key, seconds=round(seconds, 1), finished=time.strftime('%Y-%m-%d %H:%M:%S')))
        self.log(f'{prefix}: done in {minutes(seconds)}; {minutes(time.time() - self.start)} so far, about '
                 f'{minutes(self.remaining(name))} left')
        return True

    def command(self, name: str, title: str, cmd: List[str], watch: Optional[str] = None) -> bool:
        """Step ``name`` running ``cmd`` (its output in the step's log; lines matching ``watch`` echoed)."""
        return self.step(name, title, cmd, lambda log: run_logged(cmd, log, watch))


def run_logged(cmd: List[str], log_path: str, watch: Optional[str] = None) -> None:
    """Run ``cmd`` with stdout and stderr to ``log_path``; echo new lines matching ``watch`` (indented);
    ExperimentError with the log's tail when it fails."""
    pattern = re.compile(watch) if watch else None
    with open(log_path, 'w') as log:
        log.write('$ ' + ' '.join(cmd) + '\n')
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    seen = 0
    while True:
        status = proc.poll()
        if pattern is not None:
            with open(log_path, 'rb') as f:
                f.seek(seen)
                chunk = f.read()
            complete = chunk[:chunk.rfind(b'\n') + 1]  # whole lines only
            seen += len(complete)
            for line in complete.decode(errors='replace').splitlines():
                if pattern.search(line):
                    line = re.sub(r'^.* - mmdet - [A-Z]+ - ', '', line.strip())  # the logger's time stamp
                    print(f'    {line[:150]}', flush=True)
        if status is not None:
            break
        time.sleep(2)
    if status != 0:
        with open(log_path, errors='replace') as f:
            tail = f.read().splitlines()[-20:]
        sys.stderr.write(f'---- last lines of {log_path} ----\n' + '\n'.join(tail) + '\n')
        tool = next((c for c in cmd if c.endswith('.py')), cmd[0])
        raise ExperimentError(f'{tool} failed (exit {status}); log: {log_path}', status=1)


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_json(path: str, data) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------------
class Pipeline:
    """The steps of ``run``, in order (see the module docstring)."""

    def __init__(self, st: Settings, python: str):
        from mmcv import Config
        from sparsevit.datasets.synthetic import synthetic_cfg_options
        self.st, self.py = st, python
        self.base_cfg = Config.fromfile(FINETUNE_CFG)  # every config of the experiments has its pipelines
        self.data_opts = [f'{k}={v}' for k, v in synthetic_cfg_options(st.data).items()]
        self.search_opts = [f'{k}={v}' for k, v in synthetic_cfg_options(st.data, eval_split='search').items()]
        self.runner = Runner(st, planned_runs(st), python)
        self.dirs = dict(dense=self.out('mask_rcnn_swin_small_objects'),
                         saa=self.out('mask_rcnn_sparsevit_saa_small_objects'), search=self.out('search'))

    def out(self, *parts: str) -> str:
        return osp.join(self.st.dir, *parts)

    def ckpt(self, work_dir: str) -> str:
        return osp.join(work_dir, 'latest.pth')

    # ------------------------------------------------------------------------------------------------ steps
    def header(self) -> None:
        st, log = self.st, self.runner.log
        total = sum(self.runner.estimates.values())
        done = [] if st.force else [n for n in self.runner.order if osp.isfile(self.runner.path('done', f'{n}.json'))]
        log(f'SparseViT experiments -> {st.dir}: {st.num_train} train / {st.num_val} val / {st.num_search} search '
            f'images of {st.img_size} px; dense {st.dense_epochs} epochs, then {st.adapt_epochs} epochs of SAA '
            f'and of each dense finetune; {st.budgets} budgets')
        log(f'estimated total: about {minutes(total)} on a quiet 2-core CPU ({len(self.runner.order)} runs)'
            + (f'; {len(done)} runs finished before are reused if unchanged, about '
               f'{minutes(total - sum(self.runner.estimates[n] for n in done))} left' if done else ''))

    def data(self) -> None:
        from sparsevit.datasets.synthetic import SMALL_OBJECTS, generate_synthetic_coco
        st = self.st
        layout = SMALL_OBJECTS['layout']
        key = dict(out=st.data, num_train=st.num_train, num_val=st.num_val, num_search=st.num_search,
                   img_size=st.img_size, seed=st.seed, layout=dataclasses.asdict(layout))

        def make(log_path: str) -> None:
            info = generate_synthetic_coco(st.data, num_train=st.num_train, num_val=st.num_val,
                                           img_size=st.img_size, seed=st.seed, layout=layout,
                                           num_search=st.num_search)
            with open(log_path, 'w') as f:
                json.dump(info, f, indent=1, default=str)

        self.runner.step('data', f'synthetic small-objects data -> {st.data}', key, make)

    def size_opts(self, size: int) -> List[str]:
        """The pipelines' input size (the configs' is 448: set for every run, so ``--img-size`` works too)."""
        return resolution_options(self.base_cfg, size)

    def train(self, name: str, title: str, config: str, work_dir: str, epochs: int, size: int,
              extra: Sequence[str] = ()):
        cmd = [self.py, 'tools/train.py', config, '--work-dir', work_dir, '--seed', str(self.st.seed),
               '--no-validate', '--cfg-options', *self.data_opts, *self.size_opts(size), *schedule_options(epochs),
               *extra]
        self.runner.command(name, title, cmd, watch=r'Saving checkpoint at \d+ epochs')

    def latency(self, name: str, title: str, entries: List[dict], out: str) -> dict:
        st = self.st
        spec = dict(config=SPARSE_CFG, batch_size=st.latency_batch, warmup=st.latency_warmup,
                    repeats=st.latency_repeats, rounds=st.latency_rounds, entries=entries)
        spec_path = out.replace('.json', '_spec.json')
        _write_json(spec_path, spec)
        cmd = [self.py, 'tools/experiments.py', 'latency', spec_path, '--out', out]
        self.runner.step(name, title, dict(cmd=cmd, spec=spec), lambda log: run_logged(cmd, log, r'latency round'))
        return _read_json(out)['results']

    def entry(self, name: str, size: int, ratios=None, **backbone) -> dict:
        """A latency entry (``backbone``: extra SparseSwinTransformer arguments)."""
        return dict(name=name, img_size=size, pruning_ratios=ratios, backbone=backbone)

    def plan(self) -> List[int]:
        """Time the dense backbone at the full and reduced sizes and the sparsest configuration; pick the sizes."""
        s = self.st.img_size
        entries = [self.entry(f'dense{s}', s), self.entry('sparsest', s, 0.8)]
        entries += [self.entry(f'dense{r}', r, pad_before_norm=False) for r in size_ladder(s)]
        results = self.latency('latency_plan', f'latency of the dense model at {s} and below, and of the sparsest '
                               'configuration (choosing the sizes)', entries, self.out('latency_plan.json'))
        dense = {r['img_size']: r['latency_ms'] for n, r in results.items() if n.startswith('dense')}
        sizes = pick_resolutions(dense, s, self.st.budgets, results['sparsest']['latency_ms'])
        _write_json(self.out('plan.json'), dict(sizes=sizes, dense_ms=dense,
                                                 sparsest_ms=results['sparsest']['latency_ms']))
        self.runner.log('  sizes ' + ', '.join(f'{r} ({dense[r]:.1f} ms, {dense[r] / dense[s]:.2f} x)' for r in sizes)
                        + f' of dense {s} ({dense[s]:.1f} ms)')
        for i in range(len(sizes), self.st.budgets):  # fewer sizes fit than budgets asked for
            for name in (f'finetune_res{i + 1}', f'test_res{i + 1}'):
                self.runner.drop(name)
            for method in ('sparsevit', 'random', 'uniform', 'nosaa'):
                self.runner.drop(f'test_{method}_b{i + 1}')
        return sizes

    def budgets(self, sizes: List[int]) -> List[float]:
        """The search's budgets as fractions of the dense SparseViT backbone at the full size: the dense latency of
        each picked size over the full size's, both timed interleaved right before the search. The search resolves
        the fractions against the dense latency of its own table, so a machine that runs faster or slower than
        during this measurement (a shared machine drifts by 10 % and more) leaves the budgets matched."""
        s = self.st.img_size
        entries = [self.entry(f'dense{s}', s)] + [self.entry(f'dense{r}', r, pad_before_norm=False) for r in sizes]
        results = self.latency('latency_budgets', 'latency of the full and the picked sizes (the budgets)', entries,
                               self.out('latency_budgets.json'))
        dense = {int(n[len('dense'):]): r['latency_ms'] for n, r in results.items()}
        fractions = budget_fractions(dense, s, sizes)  # budget i: the latency of size i, relative to dense
        self.runner.log('  budgets ' + ', '.join(f'{budget_text(f)} ({dense[r]:.1f} of {dense[s]:.1f} ms, {r} px)'
                                                 for r, f in zip(sizes, fractions)))
        return fractions

    def search(self, budgets: List[float]) -> Dict[int, list]:
        """The multi-budget search on the held-out split: budget index (that of its size) -> the best
        configuration's ratios. tools/search.py takes the budgets (fractions of dense) ascending; budget i is the
        interval up to ``budgets[i]`` from the next lower budget."""
        st, work = self.st, self.dirs['search']
        texts = [budget_text(b) for b in budgets]
        cmd = self.search_command([
            SPARSE_CFG, self.ckpt(self.dirs['saa']), '--budgets', *sorted(texts, key=lambda t: float(t[:-1])),
            '--work-dir', work,
            '--iters', str(st.search_steps), '--population', str(st.population), '--parents', str(st.parents),
            '--seed', str(st.seed), '--img_size', str(st.img_size), '--batch-size', str(st.latency_batch),
            '--num-warmup', str(st.latency_warmup), '--num-repeats', str(st.latency_repeats), '--latency-table',
            osp.join(work, 'latency_table.json'), '--no-progress', '--cfg-options', *self.search_opts,
            *self.size_opts(st.img_size)])

        def action(log: str) -> None:
            if osp.isdir(work):
                shutil.rmtree(work)  # a fresh search: no stale state, table or configs
            run_logged(cmd, log, r'\[search\] .*(latency table:|best|budget)')
        self.runner.step('search', f'multi-budget search, budgets {" ".join(texts)} of dense, {st.search_steps} '
                         'steps (scored on the search split)', cmd, action)
        configs = {}
        for i, t in enumerate(texts):
            path = osp.join(work, f'sparsevit_max{t}.py')
            if osp.isfile(path):
                configs[i] = read_pruning_ratios(path)
            else:
                self.runner.log(f'  no configuration found for budget {texts[i]} ({path} missing): its rows are '
                                'skipped')
                for method in ('sparsevit', 'random', 'uniform', 'nosaa'):
                    self.runner.drop(f'test_{method}_b{i + 1}')
        if not configs:
            raise ExperimentError(f'the search found no configuration for any budget ({work})', status=1)
        return configs

    def search_command(self, args: List[str]) -> List[str]:
        """tools/search.py under ``torchpack dist-run -np NP`` (as the original) when torchpack and mpirun are
        there, else in one process. torchpack's launcher runs the command through a second shell unquoted, so the
        arguments are quoted once more for it (``img_scale=(448,448)`` would be a shell syntax error)."""
        torchpack = shutil.which('torchpack') or shutil.which('torchpack', path=osp.dirname(self.py))
        if self.st.np > 1 and torchpack and shutil.which('mpirun'):
            return [torchpack, 'dist-run', '-np', str(self.st.np)] + [
                shlex.quote(a) for a in [self.py, 'tools/search.py', *args]]
        return [self.py, 'tools/search.py', *args]

    def rows(self, sizes: List[int], configs: Dict[int, list], uniform: Dict[int, float]) -> List[Row]:
        """Every evaluated model (see :data:`COMPARISONS`)."""
        s = self.st.img_size
        saa, dense_ft = self.ckpt(self.dirs['saa']), self.ckpt(self.out(f'finetune_{s}'))
        rows = [Row('dense', 'resolution', s, None, FINETUNE_CFG, dense_ft, 'dense + finetune', f'dense{s}')]
        for i, r in enumerate(sizes):
            rows.append(Row(f'res{i + 1}', 'resolution', r, None, FINETUNE_CFG,
                            self.ckpt(self.out(f'finetune_{r}')), f'dense + finetune at {r}', f'dense{r}', i))
        rows.append(Row('saa_dense', 'sparsevit', s, None, SPARSE_CFG, saa, 'SAA', f'dense{s}'))
        for i, ratios in sorted(configs.items()):
            b = f'_b{i + 1}'
            rows.append(Row(f'sparsevit{b}', 'sparsevit', s, ratios, SPARSE_CFG, saa, 'SAA', f'sparsevit{b}', i))
            rows.append(Row(f'random{b}', 'random', s, ratios, SPARSE_CFG, saa, 'SAA', f'random{b}', i,
                            ['model.backbone.window_selection=random']))
            u = uniform[i]
            rows.append(Row(f'uniform{b}', 'uniform', s, [[u] * d for d in (2, 2, 6, 2)], SPARSE_CFG, saa, 'SAA',
                            f'uniform{u:g}', i))
            rows.append(Row(f'nosaa{b}', 'no_saa', s, ratios, SPARSE_CFG, dense_ft, 'dense + finetune',
                            f'sparsevit{b}', i))
        return rows

    def test(self, row: Row) -> None:
        work = self.out('eval', row.name)
        opts = [*self.data_opts, *self.size_opts(row.img_size), *row.options]
        if row.pruning_ratios is not None:
            opts.append(ratios_option(row.pruning_ratios))
        cmd = [self.py, 'tools/test.py', row.config, row.checkpoint, '--eval', 'bbox', 'segm', '--work-dir', work,
               '--cfg-options', *opts]
        title = (f'test {row.name}: {row.weights} weights, {row.img_size} px, {sparsity_text(row.pruning_ratios)}'
                 + (', random windows' if row.method == 'random' else ''))

        def action(log: str) -> None:
            for old in glob.glob(osp.join(work, 'eval_*.json')):
                os.remove(old)
            run_logged(cmd, log)
        self.runner.step(row.run_name, title, cmd, action)

    # ------------------------------------------------------------------------------------------------ all
    def run(self) -> None:
        st = self.st
        s = st.img_size
        self.header()
        self.data()
        self.train('train_dense', f'dense training, {st.dense_epochs} epochs at {s}', DENSE_CFG, self.dirs['dense'],
                   st.dense_epochs, s)
        sizes = self.plan()
        dense_ckpt = f'load_from={self.ckpt(self.dirs["dense"])}'
        self.train('train_saa', f'Sparsity-Aware Adaptation, {st.adapt_epochs} epochs at {s}', SAA_CFG,
                   self.dirs['saa'], st.adapt_epochs, s, [dense_ckpt])
        self.train('finetune_full', f'dense finetune, {st.adapt_epochs} epochs at {s}', FINETUNE_CFG,
                   self.out(f'finetune_{s}'), st.adapt_epochs, s, [dense_ckpt])
        for i, r in enumerate(sizes):
            self.train(f'finetune_res{i + 1}', f'dense finetune, {st.adapt_epochs} epochs at {r}', FINETUNE_CFG,
                       self.out(f'finetune_{r}'), st.adapt_epochs, r, [dense_ckpt])
        budgets = self.budgets(sizes)
        configs = self.search(budgets)
        entries = [self.entry(f'dense{s}', s)] + [self.entry(f'dense{r}', r, pad_before_norm=False) for r in sizes]
        for i, ratios in sorted(configs.items()):
            entries.append(self.entry(f'sparsevit_b{i + 1}', s, ratios))
            entries.append(self.entry(f'random_b{i + 1}', s, ratios, window_selection='random'))
        entries += [self.entry(f'uniform{u:g}', s, u) for u in UNIFORM_RATIOS]
        latency = self.latency('latency', f'latency of every backbone, {st.latency_rounds} interleaved rounds',
                               entries, self.out('latency.json'))
        uniform_ms = {u: latency[f'uniform{u:g}']['latency_ms'] for u in UNIFORM_RATIOS}
        uniform = {i: match_uniform(latency[f'sparsevit_b{i + 1}']['latency_ms'], uniform_ms) for i in configs}
        rows = self.rows(sizes, configs, uniform)
        front = _read_json(osp.join(self.dirs['search'], 'front.json'))['budgets']  # as the search resolved them
        budgets_ms = [next((row['budget'] for row in front if row['name'] == budget_text(f)), None) for f in budgets]
        _write_json(self.out('rows.json'), dict(rows=[dataclasses.asdict(r) for r in rows],
                                                 settings=dataclasses.asdict(st), sizes=sizes, budgets_ms=budgets_ms,
                                                 budget_fractions=budgets))
        for row in rows:
            self.test(row)
        wall = None if self.runner.reused else time.time() - self.runner.start  # a partial run's time means nothing
        table = []
        self.runner.step('report', 'results table and plot', time.time(),
                         lambda log: table.append(write_report(st.dir, wall_time_s=wall)))
        print('\n' + table[0])
        self.runner.log(f'done in {minutes(time.time() - self.runner.start)}: {self.out("results.md")}, '
                        f'{self.out("tradeoff.png")}' + (f' ({self.runner.reused} runs reused)' if self.runner.reused
                                                         else ''))


# ----------------------------------------------------------------------------------------------------------------
# Report: table (markdown + JSON) and the trade-off plot
# ----------------------------------------------------------------------------------------------------------------
def newest_eval(work_dir: str) -> Optional[dict]:
    """The ``metric`` dict of the newest ``eval_*.json`` that tools/test.py wrote in ``work_dir`` (None if none)."""
    found = sorted(glob.glob(osp.join(work_dir, 'eval_*.json')), key=osp.getmtime)
    return _read_json(found[-1]).get('metric') if found else None


def collect(rows: Sequence[dict], latency: Mapping[str, dict], evals: Mapping[str, Optional[dict]]) -> List[dict]:
    """The table's records: each row with its median latency (and the rounds) and its COCO metrics; rows without
    an evaluation are left out. A metric COCO cannot compute (no object of that size) is None."""
    records = []
    for row in rows:
        metric = evals.get(row['name'])
        if metric is None:
            continue
        lat = latency[row['latency_key']]
        values = {k: (float(metric[k]) if metric.get(k, -1) is not None and float(metric.get(k, -1)) >= 0 else None)
                  for k in METRICS}
        label = METHOD_LABELS[row['method']] if row['budget'] is not None else REFERENCE_LABELS[row['method']]
        records.append(dict(name=row['name'], method=row['method'], label=label,
                            weights=row['weights'], img_size=row['img_size'], budget=row['budget'],
                            sparsity=sparsity_text(row['pruning_ratios']), pruning_ratios=row['pruning_ratios'],
                            latency_ms=lat['latency_ms'], latency_runs_ms=lat['runs_ms'], **values))
    return records


def paired_deltas(records: Sequence[dict], base: str, other: str, metric: str = 'bbox_mAP') -> List[dict]:
    """Per budget, ``other`` minus ``base`` in ``metric`` (rows of the same budget index)."""
    by = {(r['method'], r['budget']): r for r in records if r['budget'] is not None}
    out = []
    for (method, budget), row in sorted(by.items(), key=lambda kv: kv[0][1]):
        if method == other and (base, budget) in by:
            ref = by[(base, budget)]
            if row[metric] is not None and ref[metric] is not None:
                out.append(dict(budget=budget, delta=row[metric] - ref[metric], latency_ms=row['latency_ms'],
                                base_latency_ms=ref['latency_ms']))
    return out


def verdict(records: Sequence[dict], base: str, other: str) -> str:
    """One line: at how many budgets ``other`` (SparseViT) is ahead of ``base``, and by how much (bbox mAP, and on
    small objects)."""
    deltas = paired_deltas(records, base, other)
    if not deltas:
        return 'no budget has both rows evaluated'
    small = {d['budget']: d['delta'] for d in paired_deltas(records, base, other, 'bbox_mAP_s')}
    ahead = sum(d['delta'] > 0 for d in deltas)
    parts = [f"budget {d['budget'] + 1} ({d['latency_ms']:.1f} vs {d['base_latency_ms']:.1f} ms): {d['delta']:+.3f}"
             + (f" (small {small[d['budget']]:+.3f})" if d['budget'] in small else '') for d in deltas]
    return (f"{METHOD_LABELS[other]} ahead of {METHOD_LABELS[base]} at {ahead}/{len(deltas)} budgets; bbox mAP "
            f"difference: " + '; '.join(parts))


def _fmt(value: Optional[float]) -> str:
    return '–' if value is None else f'{value:.3f}'


def markdown_table(records: Sequence[dict], reference_ms: float) -> str:
    lines = ['| model | weights | input | sparsity (genes per stage) | latency (ms) | vs dense | bbox mAP | mask mAP | '
             'bbox mAP S | bbox mAP M |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in sorted(records, key=lambda r: -r['latency_ms']):
        budget = f" (budget {r['budget'] + 1})" if r['budget'] is not None else ''
        lines.append(f"| {r['label']}{budget} | {r['weights']} | {r['img_size']} | {r['sparsity']} | "
                     f"{r['latency_ms']:.1f} | {r['latency_ms'] / reference_ms:.2f} | {_fmt(r['bbox_mAP'])} | "
                     f"{_fmt(r['segm_mAP'])} | {_fmt(r['bbox_mAP_s'])} | {_fmt(r['bbox_mAP_m'])} |")
    return '\n'.join(lines)


def report_markdown(records: Sequence[dict], meta: dict) -> str:
    """The results: one table per comparison, each with its verdict line, and how it was measured."""
    st = meta['settings']
    dense = next((r for r in records if r['name'] == 'dense'), None)
    ref = dense['latency_ms'] if dense else max(r['latency_ms'] for r in records)
    text = [f"# SparseViT experiments on the small-objects synthetic data ({st['img_size']} px)", '']
    for title, base, other, what in COMPARISONS:
        rows = [r for r in records if r['method'] == base or (r['method'] == other and
                                                            (r['budget'] is not None or base == 'resolution'))]
        if not any(r['method'] == base for r in rows):
            continue
        text += [f'## {title}', '', f'{what[0].upper()}{what[1:]}.', '', markdown_table(rows, ref), '',
                 f'**{verdict(records, base, other)}**', '']
    lat = meta['latency']
    text += ['Latency: backbone only, batch {b}, random input, {w} warm-up + {n} timed forwards, trimmed mean (25 % '
             'each side), median of {k} interleaved rounds in one process, {t} threads, torch {v}; "vs dense": the '
             'dense model at {s} px. mAP: COCO mAP@[.5:.95] on the val split ({nv} images); S/M: objects below '
             '32² px / 32²–96² px of area. Training: {de} epochs dense, then {ae} epochs of SAA (SparseViT rows, '
             'random, uniform) or of dense finetune at the row\'s size (resolution and no-SAA rows), same schedule. '
             'The search ({search}) scored candidates on the held-out search split ({ns} images).'.format(
                 b=lat['batch_size'], w=lat['warmup'], n=lat['repeats'], k=lat['rounds'], t=lat['threads'],
                 v=lat['torch'], s=st['img_size'], nv=st['num_val'], de=st['dense_epochs'], ae=st['adapt_epochs'],
                 ns=st['num_search'], search=f"multi-budget, {st['search_steps']} steps")]
    if meta.get('wall_time_s'):
        text.append(f"Wall time of the run: {meta['wall_time_s'] / 60:.1f} min.")
    return '\n'.join(text) + '\n'


def plot_tradeoff(records: Sequence[dict], path: str) -> str:
    """``bbox mAP`` (and small-object bbox mAP) vs backbone latency, one curve per method, as the paper's figure."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    styles = dict(resolution=('tab:blue', 's', '-'), sparsevit=('tab:red', 'o', '-'), random=('tab:gray', 'x', '--'),
                  uniform=('tab:green', '^', '--'), no_saa=('tab:purple', 'v', ':'))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, metric, title in zip(axes, ('bbox_mAP', 'bbox_mAP_s'), ('all objects', 'small objects')):
        for method, (colour, marker, line) in styles.items():
            points = sorted(((r['latency_ms'], r[metric], r) for r in records
                             if r['method'] == method and r[metric] is not None),
                            key=lambda p: p[:2])  # two budgets can pick the same row: ties must not compare dicts
            if not points:
                continue
            ax.plot([p[0] for p in points], [p[1] for p in points], line, marker=marker, color=colour,
                    label=METHOD_LABELS[method])
            if method == 'resolution':
                for x, y, r in points:
                    ax.annotate(f"{r['img_size']}", (x, y), textcoords='offset points', xytext=(4, -10), fontsize=7,
                                color=colour)
        ax.set_xlabel('backbone latency (ms)')
        ax.set_ylabel('bbox mAP' + (' (small objects)' if metric.endswith('_s') else ''))
        ax.set_title(f'bbox mAP vs latency, {title}')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(work_dir: str, wall_time_s: Optional[float] = None) -> str:
    """Build ``results.md``, ``results.json`` and ``tradeoff.png`` in ``work_dir`` from its ``rows.json``,
    ``latency.json`` and ``eval/*/eval_*.json``; returns the markdown."""
    meta = _read_json(osp.join(work_dir, 'rows.json'))
    latency = _read_json(osp.join(work_dir, 'latency.json'))
    if not meta.get('rows') or not latency.get('results'):
        raise ExperimentError(f'{work_dir} has no rows.json / latency.json: run the experiments first')
    evals = {r['name']: newest_eval(osp.join(work_dir, 'eval', r['name'])) for r in meta['rows']}
    records = collect(meta['rows'], latency['results'], evals)
    if not records:
        raise ExperimentError(f'no evaluation found under {osp.join(work_dir, "eval")}')
    meta = dict(meta, latency={k: v for k, v in latency.items() if k != 'results'}, wall_time_s=wall_time_s)
    text = report_markdown(records, meta)
    with open(osp.join(work_dir, 'results.md'), 'w') as f:
        f.write(text)
    missing = [r['name'] for r in meta['rows'] if evals.get(r['name']) is None]
    verdicts = {title: verdict(records, base, other) for title, base, other, _ in COMPARISONS}
    _write_json(osp.join(work_dir, 'results.json'), dict(rows=records, verdicts=verdicts, missing=missing,
                                                         settings=meta['settings'], sizes=meta['sizes'],
                                                         budgets_ms=meta['budgets_ms'], latency=meta['latency'],
                                                         wall_time_s=wall_time_s))
    plot_tradeoff(records, osp.join(work_dir, 'tradeoff.png'))
    return text


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------
class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line and exits 2."""

    def error(self, message: str):
        self.exit(2, f'{PROG}: error: {message} (see --help)\n')


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description='SparseViT comparisons at matched latency (make experiments).')
    sub = parser.add_subparsers(dest='command', required=True, parser_class=OneLineParser)
    run = sub.add_parser('run', help='the whole pipeline (default settings: EXPERIMENTS_* variables)')
    run.add_argument('--dry-run', action='store_true', help='print the runs and the time estimate, run nothing')
    for field in dataclasses.fields(Settings):
        name = f"--{field.name.replace('_', '-')}"
        env = f'EXPERIMENTS_{field.name.upper()}'
        if field.type is bool:
            run.add_argument(name, action='store_true', default=None, help=f'{SETTING_HELP[field.name]} ({env}=1)')
        else:
            run.add_argument(name, type=field.type, default=None, metavar=field.type.__name__.upper(),
                             help=f'{SETTING_HELP[field.name]} ({env}, default: {field.default})')
    lat = sub.add_parser('latency', help='time the backbones of a spec JSON back to back in this process')
    lat.add_argument('spec', help='JSON: config, batch_size, warmup, repeats, rounds, entries (name, img_size, '
                     'pruning_ratios, backbone)')
    lat.add_argument('--out', required=True, help='result JSON')
    rep = sub.add_parser('report', help='the table and plot again from a finished (or partial) run')
    rep.add_argument('dir', nargs='?', default=None, help='the experiments directory (default: EXPERIMENTS_DIR or '
                     'work_dirs/experiments)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.command == 'latency':
            spec = _read_json(args.spec)
            if not spec.get('entries'):
                raise ExperimentError(f'{args.spec}: no entries (or not a JSON spec)')
            _write_json(args.out, run_latency(spec))
            return 0
        if args.command == 'report':
            print(write_report(args.dir or os.environ.get('EXPERIMENTS_DIR') or Settings.dir))
            return 0
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)}
        st = settings_from(os.environ, overrides)
        if args.dry_run:
            runs = planned_runs(st)
            for i, (name, seconds) in enumerate(runs):
                print(f'{i + 1:2d}. {name:<22} about {minutes(seconds)}')
            print(f'estimated total: about {minutes(sum(s for _, s in runs))} ({len(runs)} runs)')
            return 0
        python = os.environ.get('PYTHON') or sys.executable
        Pipeline(st, python).run()
    except ExperimentError as err:
        print(f'{PROG}: error: {err}', file=sys.stderr, flush=True)
        return err.status
    return 0


if __name__ == '__main__':
    sys.exit(main())
