"""The pipeline of ``make experiments`` (``tools/experiments.py run``): SparseViT's claims as comparisons at matched
latency, on the small-objects synthetic data.

The comparisons (the paper's Fig. 1 and ablations), on the variant of the synthetic dataset that SparseViT targets
(:data:`sparsevit.datasets.synthetic.SMALL_OBJECTS`: 448 px images, 4-12 shapes of 4-12 % of the side, some
clustered, most of the image background; ``'scene'`` style by default: textured objects on smooth backgrounds),
with the demo's narrow Swin Mask R-CNN, trained here from scratch:

1. sparsity vs resolution: the configurations of one multi-budget search vs the dense model finetuned and tested at
   reduced input sizes; the sizes are picked by their measured backbone latency and set the search's budgets;
2. sparsity vs width: dense models of reduced width (embed dims x 0.75, x 0.5), trained from scratch as long as
   SparseViT's whole path, vs the searched configuration of closest latency;
3. window selection: L2-norm vs random windows (``window_selection='random'``, averaged over selection seeds) at
   the searched ratios;
4. non-uniform vs uniform: the searched configuration vs the one uniform ratio of closest latency;
5. with vs without SAA: the SAA weights vs the dense weights (finetuned as long, without sparsity) at the searched
   ratios.

Schedule (fairness: every model compared got the same training after the dense training): dense training
(``--dense-epochs``); the dense backbone timed at the full size and at every multiple of 32 down to half of it,
and the sparsest configuration, to pick the sizes; then, each for ``--adapt-epochs`` with one schedule
(``configs/experiments/mask_rcnn_swin_finetune_small_objects.py``): Sparsity-Aware Adaptation, a dense finetune at
the full size and a dense finetune at each picked size; the width baselines from scratch for dense + adapt epochs;
the picked sizes and the full size timed again, the budgets being each picked size's latency as a fraction of the
full size's (``--budgets 0.712x ...``: the search resolves them against its own dense latency); one multi-budget
search on the SAA weights, scored on the held-out ``search`` split; every baseline and each budget's best
``--match-candidates`` search candidates timed back to back in one process (interleaved rounds, median; GMACs
counted for the windows kept), and per budget the best candidate within 3 % of its baseline's latency compared
(:mod:`sparsevit.experiments.matching`); tools/test.py on the val split for every row, with its detections for
the paired bootstrap; the kept-window analysis (tools/analyze_windows.py) of the SAA and the dense weights;
``results.md``, ``results.json`` and ``tradeoff.png`` (:mod:`sparsevit.experiments.report`). Sparse models are
evaluated straight from the SAA weights (no per-configuration finetune), so they and the resolution baselines
had exactly the same epochs after the dense training.

Every step is a subprocess (``tools/*.py``) run by :class:`~.steps.Runner`, reused when it finished before with
the same command; the latency runs are ``tools/experiments.py latency SPEC --out OUT`` (:mod:`.latency`).
"""
import dataclasses
import json
import os
import os.path as osp
import shlex
import shutil
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .files import read_json, write_json
from .matching import Candidate, budget_candidates, candidate_name, guard_fraction, match_uniform, pick_matched
from .pickers import (budget_fractions, budget_text, pick_resolutions, ratios_option, read_pruning_ratios,
                      resolution_options, schedule_options)
from .plan import UNIFORM_RATIOS, WINDOW_RATIOS, budget_tests, minutes, planned_runs, size_ladder, width_runs
from .report import sparsity_text, write_report
from .settings import ExperimentError, Settings, knob
from .steps import ROOT, Runner, run_logged
from .width import width_name, width_options, width_overrides

CFG_DIR = 'configs/experiments'
DENSE_CFG = f'{CFG_DIR}/mask_rcnn_swin_small_objects.py'
FINETUNE_CFG = f'{CFG_DIR}/mask_rcnn_swin_finetune_small_objects.py'
SPARSE_CFG = f'{CFG_DIR}/mask_rcnn_sparsevit_small_objects.py'
SAA_CFG = f'{CFG_DIR}/mask_rcnn_sparsevit_saa_small_objects.py'


@dataclasses.dataclass
class Row:
    """One evaluation (one tools/test.py run) of the results table; the evaluations of one ``group`` (the
    selection seeds of a random-window row) make one table row."""
    name: str
    method: str  # resolution | sparsevit | random | uniform | no_saa | width
    img_size: int
    pruning_ratios: Optional[list]
    config: str
    checkpoint: str
    weights: str
    latency_key: str
    budget: Optional[int] = None  # index of the latency budget (and of the resolution that set it)
    options: List[str] = dataclasses.field(default_factory=list)
    group: str = ''  # the table row ('' : the row's own name)
    seed: Optional[int] = None  # selection seed of a random-window evaluation
    width: Optional[float] = None  # width factor of a reduced-width baseline

    def __post_init__(self):
        self.group = self.group or self.name

    @property
    def run_name(self) -> str:
        return f'test_{self.name}'


class Pipeline:
    """The steps of ``run``, in order (see the module docstring)."""

    def __init__(self, st: Settings, python: str, root: str = ROOT):
        from mmcv import Config
        from ..datasets.synthetic import ann_file, synthetic_cfg_options
        self.st, self.py, self.root = st, python, root
        self.base_cfg = Config.fromfile(FINETUNE_CFG)  # every config of the experiments has its pipelines
        backbone = self.base_cfg.model.backbone
        self.depths = list(backbone.depths)
        try:
            self.widths = {w: width_overrides(backbone, w) for w in st.width_factors}
        except ValueError as err:
            raise ExperimentError(f'{knob("widths")}: {err}') from None
        self.width_opts = {w: width_options(backbone, w) for w in st.width_factors}
        self.data_opts = [f'{k}={v}' for k, v in synthetic_cfg_options(st.data).items()]
        self.search_opts = [f'{k}={v}' for k, v in synthetic_cfg_options(st.data, eval_split='search').items()]
        self.val_ann = ann_file(st.data, 'val')
        self.runner = Runner(st, planned_runs(st), python, root)
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
        widths = ', '.join(f'x{w:g}' for w in st.width_factors) or 'none'
        log(f'SparseViT experiments -> {st.dir}: {st.num_train} train / {st.num_val} val / {st.num_search} search '
            f'images of {st.img_size} px ({st.style} style); dense {st.dense_epochs} epochs, then '
            f'{st.adapt_epochs} epochs of SAA and of each dense finetune; width baselines {widths} '
            f'({st.dense_epochs + st.adapt_epochs} epochs from scratch); {st.budgets} budgets, '
            f'{st.match_candidates} candidates each; {st.random_seeds} random-window seeds; '
            f'{st.latency_rounds} latency rounds')
        log(f'estimated total: about {minutes(total)} on a quiet 2-core CPU ({len(self.runner.order)} runs)'
            + (f'; {len(done)} runs finished before are reused if unchanged, about '
               f'{minutes(total - sum(self.runner.estimates[n] for n in done))} left' if done else ''))

    def data(self) -> None:
        from ..datasets.synthetic import SMALL_OBJECTS, generate_synthetic_coco
        st = self.st
        layout = SMALL_OBJECTS['layout']
        key = dict(out=st.data, num_train=st.num_train, num_val=st.num_val, num_search=st.num_search,
                   img_size=st.img_size, seed=st.seed, layout=dataclasses.asdict(layout), style=st.style)

        def make(log_path: str) -> None:
            info = generate_synthetic_coco(st.data, num_train=st.num_train, num_val=st.num_val,
                                           img_size=st.img_size, seed=st.seed, layout=layout,
                                           num_search=st.num_search, style=st.style)
            with open(log_path, 'w') as f:
                json.dump(info, f, indent=1, default=str)

        self.runner.step('data', f'synthetic small-objects data ({st.style} style) -> {st.data}', key, make)

    def size_opts(self, size: int) -> List[str]:
        """The pipelines' input size (the configs' is 448: set for every run, so ``--img-size`` works too)."""
        return resolution_options(self.base_cfg, size)

    def train_command(self, config: str, work_dir: str, epochs: int, size: int, extra: Sequence[str] = ()) -> List[str]:
        return [self.py, 'tools/train.py', config, '--work-dir', work_dir, '--seed', str(self.st.seed),
                '--no-validate', '--cfg-options', *self.data_opts, *self.size_opts(size), *schedule_options(epochs),
                *extra]

    def train(self, name: str, title: str, config: str, work_dir: str, epochs: int, size: int,
              extra: Sequence[str] = ()):
        self.runner.command(name, title, self.train_command(config, work_dir, epochs, size, extra),
                            watch=r'Saving checkpoint at \d+ epochs')

    def parallel(self, steps: Sequence[Tuple[str, str, List[str]]]) -> None:
        """Independent command steps, ``jobs`` at a time (:meth:`Runner.parallel`), the cores shared out."""
        jobs = self.st.jobs
        self.runner.parallel(steps, jobs, max(1, (os.cpu_count() or 1) // jobs))

    def latency(self, name: str, title: str, entries: List[dict], out: str) -> dict:
        st = self.st
        spec = dict(config=SPARSE_CFG, batch_size=st.latency_batch, warmup=st.latency_warmup,
                    repeats=st.latency_repeats, rounds=st.latency_rounds, entries=entries)
        spec_path = out.replace('.json', '_spec.json')
        write_json(spec_path, spec)
        cmd = [self.py, 'tools/experiments.py', 'latency', spec_path, '--out', out]
        self.runner.step(name, title, dict(cmd=cmd, spec=spec),
                         lambda log: run_logged(cmd, log, r'latency round', self.root))
        return read_json(out)['results']

    def entry(self, name: str, size: int, ratios=None, **backbone) -> dict:
        """A latency entry (``backbone``: extra SparseSwinTransformer arguments)."""
        return dict(name=name, img_size=size, pruning_ratios=ratios, backbone=backbone)

    def drop_budget(self, i: int, resolution: bool = False) -> None:
        """Drop the planned runs of budget ``i`` (and its resolution baseline's, with ``resolution``)."""
        for name in budget_tests(self.st, i) + ([f'finetune_res{i + 1}', f'test_res{i + 1}'] if resolution else []):
            self.runner.drop(name)

    def plan(self) -> List[int]:
        """Time the dense backbone at the full and reduced sizes and the sparsest configuration; pick the sizes."""
        s = self.st.img_size
        entries = [self.entry(f'dense{s}', s), self.entry('sparsest', s, 0.8)]
        entries += [self.entry(f'dense{r}', r, pad_before_norm=False) for r in size_ladder(s)]
        results = self.latency('latency_plan', f'latency of the dense model at {s} and below, and of the sparsest '
                               'configuration (choosing the sizes)', entries, self.out('latency_plan.json'))
        dense = {r['img_size']: r['latency_ms'] for n, r in results.items() if n.startswith('dense')}
        sizes = pick_resolutions(dense, s, self.st.budgets, results['sparsest']['latency_ms'])
        write_json(self.out('plan.json'), dict(sizes=sizes, dense_ms=dense,
                                               sparsest_ms=results['sparsest']['latency_ms']))
        self.runner.log('  sizes ' + ', '.join(f'{r} ({dense[r]:.1f} ms, {dense[r] / dense[s]:.2f} x)' for r in sizes)
                        + f' of dense {s} ({dense[s]:.1f} ms)')
        for i in range(len(sizes), self.st.budgets):  # fewer sizes fit than budgets asked for
            self.drop_budget(i, resolution=True)
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

    def searched(self, budgets: List[float]) -> List[float]:
        """The budgets the search gets: the experiments' ones, then the guard budget (:func:`guard_fraction`)."""
        guard = guard_fraction(budgets, self.st.guard)
        return list(budgets) + ([] if guard is None else [guard])

    def search(self, budgets: List[float]) -> Dict[int, List[Candidate]]:
        """The multi-budget search on the held-out split: budget index (that of its size) -> its
        ``match_candidates`` candidates from the search history (rank 0: the search's best, as in its
        ``sparsevit_max{B}.py``; then the best around the budget's edge: :func:`budget_candidates`).
        tools/search.py takes the budgets (fractions of dense) ascending; budget i is the interval up to
        ``budgets[i]`` from the next lower budget. The guard budget above the loosest (``guard``) is searched too;
        its configurations are candidates of the other budgets only."""
        st, work = self.st, self.dirs['search']
        texts = [budget_text(b) for b in self.searched(budgets)]
        ascending = sorted(texts, key=lambda t: float(t[:-1]))
        cmd = self.search_command([
            SPARSE_CFG, self.ckpt(self.dirs['saa']), '--budgets', *ascending, '--work-dir', work,
            '--iters', str(st.search_steps), '--population', str(st.population), '--parents', str(st.parents),
            '--seed', str(st.seed), '--img_size', str(st.img_size), '--batch-size', str(st.latency_batch),
            '--num-warmup', str(st.latency_warmup), '--num-repeats', str(st.latency_repeats), '--latency-table',
            osp.join(work, 'latency_table.json'), '--no-progress', '--cfg-options', *self.search_opts,
            *self.size_opts(st.img_size)])

        def action(log: str) -> None:
            if osp.isdir(work):
                shutil.rmtree(work)  # a fresh search: no stale state, table or configs
            run_logged(cmd, log, r'\[search\] .*(latency table:|best|budget)', self.root)
        guard = f' (and a guard budget {texts[-1]})' if len(texts) > len(budgets) else ''
        self.runner.step('search', f'multi-budget search, budgets {" ".join(texts[:len(budgets)])} of dense{guard}, '
                         f'{st.search_steps} steps (scored on the search split)', cmd, action)
        return self.read_candidates(budgets)

    def read_candidates(self, budgets: List[float]) -> Dict[int, List[Candidate]]:
        """The search's candidates per budget (:meth:`search`); a budget without any drops its runs."""
        from ..search.outputs import SearchFiles, budgets_tag
        searched = self.searched(budgets)
        texts = [budget_text(b) for b in searched]
        work = self.dirs['search']
        files = SearchFiles(work, budgets_tag(sorted(texts, key=lambda t: float(t[:-1]))))
        if not osp.isfile(files.history):
            raise ExperimentError(f'the search wrote no history ({files.history})', status=1)
        edges = None
        if osp.isfile(files.summary):  # the budgets as the search resolved them: the edges the candidates surround
            resolved = {b['text']: b['ms'] for b in read_json(files.summary).get('band', {}).get('budgets', [])}
            if all(t in resolved for t in texts):
                edges = [resolved[t] for t in texts]
        found = budget_candidates(files.read_history(), searched, self.depths, self.st.match_candidates, edges)
        candidates = {i: c for i, c in found.items() if i < len(budgets)}  # not the guard budget's own
        for i, t in enumerate(texts[:len(budgets)]):
            if i not in candidates:
                self.runner.log(f'  no configuration found for budget {t}: its rows are skipped')
                self.drop_budget(i)
                continue
            path = files.budget_config(t)
            if osp.isfile(path) and read_pruning_ratios(path) != candidates[i][0].pruning_ratios:
                self.runner.log(f'  note: budget {t}: rank 0 of the history differs from {path}')
        if not candidates:
            raise ExperimentError(f'the search found no configuration for any budget ({work})', status=1)
        return candidates

    def search_command(self, args: List[str]) -> List[str]:
        """tools/search.py under ``torchpack dist-run -np NP`` (as the original) when torchpack and mpirun are
        there, else in one process. torchpack's launcher runs the command through a second shell unquoted, so the
        arguments are quoted once more for it (``img_scale=(448,448)`` would be a shell syntax error)."""
        torchpack = shutil.which('torchpack') or shutil.which('torchpack', path=osp.dirname(self.py))
        if self.st.np > 1 and torchpack and shutil.which('mpirun'):
            return [torchpack, 'dist-run', '-np', str(self.st.np)] + [
                shlex.quote(a) for a in [self.py, 'tools/search.py', *args]]
        return [self.py, 'tools/search.py', *args]

    def measure_all(self, sizes: List[int], candidates: Dict[int, List[Candidate]]) -> dict:
        """Every backbone of the table in one interleaved run: the dense model at the full and the picked sizes,
        the width baselines, each budget's candidates with L2 and with random windows, the uniform ratios."""
        st, s = self.st, self.st.img_size
        entries = [self.entry(f'dense{s}', s)] + [self.entry(f'dense{r}', r, pad_before_norm=False) for r in sizes]
        entries += [self.entry(width_name(w), s, None, **self.widths[w]) for w in st.width_factors]
        for i, cands in sorted(candidates.items()):
            for c in cands:
                entries.append(self.entry(c.name, s, c.pruning_ratios))
                entries.append(self.entry(candidate_name(i, c.rank, 'random'), s, c.pruning_ratios,
                                          window_selection='random'))
        entries += [self.entry(f'uniform{u:g}', s, u) for u in UNIFORM_RATIOS]
        return self.latency('latency', f'latency of every backbone ({len(entries)}), {st.latency_rounds} '
                            'interleaved rounds', entries, self.out('latency.json'))

    def match(self, sizes: List[int], candidates: Dict[int, List[Candidate]], latency: Mapping[str, dict]) -> dict:
        """Per budget, the candidate compared with its resolution baseline (:func:`pick_matched`), as stored in
        ``rows.json``: baseline, candidates with their measured gaps, the pick."""
        matches = {}
        for i, cands in sorted(candidates.items()):
            base = f'dense{sizes[i]}'
            base_ms = latency[base]['latency_ms']
            measured = {c.name: latency[c.name]['latency_ms'] for c in cands}
            pick = pick_matched(cands, measured, base_ms)
            matches[i] = dict(baseline=base, baseline_ms=base_ms, picked=pick.name, rank=pick.rank, gap=pick.gap,
                              matched=pick.matched, candidates=[
                                  dict(name=c.name, rank=c.rank, metric=c.metric, predicted_ms=c.predicted_ms,
                                       measured_ms=measured[c.name], gap=measured[c.name] / base_ms - 1,
                                       pruning_ratios=c.pruning_ratios) for c in cands])
            self.runner.log(f'  budget {i + 1}: candidate rank {pick.rank} at {measured[pick.name]:.1f} ms vs '
                            f'{base_ms:.1f} ms at {sizes[i]} px ({pick.gap:+.1%})'
                            + ('' if pick.matched else ': not matched (none within 3 %)'))
        return matches

    def rows(self, sizes: List[int], matches: Dict[int, dict], uniform: Dict[int, float]) -> List[Row]:
        """Every evaluation (see :data:`COMPARISONS`)."""
        st, s = self.st, self.st.img_size
        saa, dense_ft = self.ckpt(self.dirs['saa']), self.ckpt(self.out(f'finetune_{s}'))
        rows = [Row('dense', 'resolution', s, None, FINETUNE_CFG, dense_ft, 'dense + finetune', f'dense{s}')]
        for i, r in enumerate(sizes):
            rows.append(Row(f'res{i + 1}', 'resolution', r, None, FINETUNE_CFG,
                            self.ckpt(self.out(f'finetune_{r}')), f'dense + finetune at {r}', f'dense{r}', i))
        rows.append(Row('saa_dense', 'sparsevit', s, None, SPARSE_CFG, saa, 'SAA', f'dense{s}'))
        for i, m in sorted(matches.items()):
            b, key = f'_b{i + 1}', m['picked']
            ratios = next(c['pruning_ratios'] for c in m['candidates'] if c['name'] == key)
            rows.append(Row(f'sparsevit{b}', 'sparsevit', s, ratios, SPARSE_CFG, saa, 'SAA', key, i))
            for seed in range(st.random_seeds):
                rows.append(Row(f'random{b}_s{seed}', 'random', s, ratios, SPARSE_CFG, saa, 'SAA',
                                candidate_name(i, m['rank'], 'random'), i,
                                ['model.backbone.window_selection=random', f'model.backbone.selection_seed={seed}'],
                                group=f'random{b}', seed=seed))
            u = uniform[i]
            rows.append(Row(f'uniform{b}', 'uniform', s, [[u] * d for d in self.depths], SPARSE_CFG, saa, 'SAA',
                            f'uniform{u:g}', i))
            rows.append(Row(f'nosaa{b}', 'no_saa', s, ratios, SPARSE_CFG, dense_ft, 'dense + finetune', key, i))
        epochs = st.dense_epochs + st.adapt_epochs
        for w in st.width_factors:
            name = width_name(w)
            rows.append(Row(name, 'width', s, None, DENSE_CFG, self.ckpt(self.out(name)),
                            f'dense, from scratch, {epochs} epochs', name, options=self.width_opts[w], width=w))
        return rows

    def test_command(self, row: Row) -> List[str]:
        """tools/test.py on the val split for ``row``: the eval json and the detections (``results.bbox.json``,
        the bootstrap's) in ``eval/NAME/``."""
        work = self.out('eval', row.name)
        opts = [*self.data_opts, *self.size_opts(row.img_size), *row.options]
        if row.pruning_ratios is not None:
            opts.append(ratios_option(row.pruning_ratios))
        return [self.py, 'tools/test.py', row.config, row.checkpoint, '--eval', 'bbox', 'segm', '--work-dir', work,
                '--eval-options', f'jsonfile_prefix={osp.join(work, "results")}', '--cfg-options', *opts]

    def test_step(self, row: Row) -> Tuple[str, str, List[str]]:
        """``(run name, title, command)`` of a row's test (tools/test.py writes a new time-stamped eval json; the
        report reads the newest)."""
        work, cmd = self.out('eval', row.name), self.test_command(row)
        title = (f'test {row.name}: {row.weights} weights, {row.img_size} px, {sparsity_text(row.pruning_ratios)}'
                 + (f', random windows (seed {row.seed})' if row.method == 'random' else '')
                 + (f', width x{row.width:g}' if row.width is not None else ''))
        return row.run_name, title, cmd


    def windows_command(self, key: str, checkpoint: str) -> List[str]:
        """tools/analyze_windows.py on the val split for one set of weights: ``windows_{key}.json`` (and .md)."""
        st = self.st
        out = self.out(f'windows_{key}.json')
        return [self.py, 'tools/analyze_windows.py', SPARSE_CFG, checkpoint, '--split', 'val', '--ratios',
                *[f'{r:g}' for r in WINDOW_RATIOS], '--num-images', str(st.window_images), '--random-seeds',
                str(st.random_seeds), '--device', 'cpu', '--json', out, '--markdown', out.replace('.json', '.md'),
                '--cfg-options', *self.data_opts, *self.size_opts(st.img_size)]

    def windows_step(self, key: str, checkpoint: str, weights: str) -> Tuple[str, str, List[str]]:
        """The kept-window analysis of one set of weights, as a step."""
        return (f'windows_{key}', f'kept windows of the {weights} weights, ratios '
                f'{" ".join(f"{r:g}" for r in WINDOW_RATIOS)}, {self.st.window_images} val images',
                self.windows_command(key, checkpoint))

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
        trainings = [  # independent of each other: run st.jobs at a time
            ('train_saa', f'Sparsity-Aware Adaptation, {st.adapt_epochs} epochs at {s}',
             self.train_command(SAA_CFG, self.dirs['saa'], st.adapt_epochs, s, [dense_ckpt])),
            ('finetune_full', f'dense finetune, {st.adapt_epochs} epochs at {s}',
             self.train_command(FINETUNE_CFG, self.out(f'finetune_{s}'), st.adapt_epochs, s, [dense_ckpt]))]
        trainings += [(f'finetune_res{i + 1}', f'dense finetune, {st.adapt_epochs} epochs at {r}',
                       self.train_command(FINETUNE_CFG, self.out(f'finetune_{r}'), st.adapt_epochs, r, [dense_ckpt]))
                      for i, r in enumerate(sizes)]
        epochs = st.dense_epochs + st.adapt_epochs
        trainings += [(name, f"dense training at width x{w:g} ({self.widths[w]['embed_dims']} embed dims), {epochs} "
                       f'epochs at {s} from scratch',
                       self.train_command(DENSE_CFG, self.out(width_name(w)), epochs, s, self.width_opts[w]))
                      for (name, _), w in zip(width_runs(st), st.width_factors)]
        self.parallel(trainings)
        budgets = self.budgets(sizes)
        candidates = self.search(budgets)
        latency = self.measure_all(sizes, candidates)
        matches = self.match(sizes, candidates, latency)
        uniform_ms = {u: latency[f'uniform{u:g}']['latency_ms'] for u in UNIFORM_RATIOS}
        uniform = {i: match_uniform(latency[m['picked']]['latency_ms'], uniform_ms) for i, m in matches.items()}
        rows = self.rows(sizes, matches, uniform)
        front = read_json(osp.join(self.dirs['search'], 'front.json'))['budgets']  # as the search resolved them
        budgets_ms = [next((row['budget'] for row in front if row['name'] == budget_text(f)), None) for f in budgets]
        write_json(self.out('rows.json'), dict(rows=[dataclasses.asdict(r) for r in rows],
                                               settings=dataclasses.asdict(st), sizes=sizes, budgets_ms=budgets_ms,
                                               budget_fractions=budgets, val_ann=self.val_ann,
                                               matches={str(i): m for i, m in matches.items()}))
        tests = [self.test_step(row) for row in rows]  # a redone test writes a newer eval json, which the report reads
        self.parallel(tests + [self.windows_step('saa', self.ckpt(self.dirs['saa']), 'SAA'),
                               self.windows_step('dense', self.ckpt(self.out(f'finetune_{s}')),
                                                 f'dense (finetuned at {s})')])
        wall = None if self.runner.reused else time.time() - self.runner.start  # a partial run's time means nothing
        table = []
        self.runner.step('report', 'results table, bootstrap intervals and plot', time.time(),
                         lambda log: table.append(write_report(st.dir, wall_time_s=wall)))
        print('\n' + table[0])
        self.runner.log(f'done in {minutes(time.time() - self.runner.start)}: {self.out("results.md")}, '
                        f'{self.out("tradeoff.png")}' + (f' ({self.runner.reused} runs reused)' if self.runner.reused
                                                         else ''))
